from . import loud


def exclaim(text: str) -> str:
    return loud.shout(text) + "!"
