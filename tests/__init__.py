"""machi\x27s test suite (a package, so test modules never shadow the components they test)."""
