"""``python -m eval``: the same commands as the ``ssr-eval`` console script."""

from eval.cli import main

if __name__ == "__main__":
    main(prog_name="ssr-eval")
