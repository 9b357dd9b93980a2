"""machi's test suite: a package, so that a test folder never shadows the component it tests."""
