from pathlib import Path

GREETING = (Path(__file__).parent / "greeting.txt").read_text().strip()


def greet(name: str) -> str:
    return f"{GREETING}, {name}"


def signature() -> str:
    return " (helpers)"
