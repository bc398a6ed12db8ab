"""Links into the Tengo Lugar web app, as emails and notifications carry them."""

APP_URL = "https://tengolugar.com"


def url(path: str) -> str:
    return APP_URL + path
