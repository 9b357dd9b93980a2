"""The API's routes, one ``APIRouter`` module per concern; each has ``build(api)``."""
