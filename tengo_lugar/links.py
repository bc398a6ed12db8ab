"""The Tengo Lugar web app's address, for the links in emails.

Notifications carry paths (``/trips/<id>``), as the team's do; the app resolves them.
"""

APP_URL = "https://tengolugar.com"
