from pkg.loud import shout

__all__ = ["shout"]
