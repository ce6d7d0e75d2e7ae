"""The API's routes, one router per area, joined in cli.server.app.create_app."""
