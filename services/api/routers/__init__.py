"""The API's routes, one router per resource, included by ``services.api.app.create_app``."""
