"""The bottom package: what every other package of ssr-bench shares, owned once.

``errors`` (the project's error types), ``io`` (atomic writes, hashing), ``paths`` (cache
folders), ``config`` (the strict mapping -> dataclass loader and the one "did you mean"),
``registry`` (``Registry[T]`` for the names a user types), ``devices`` (torch device names) and
``cli`` (the shared click options and the library-error -> click-error mapping; the only module
here that imports click). It imports no other project package: ssr_datasets, degrade,
ssr_models and eval all stand on it.
"""
