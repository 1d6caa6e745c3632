"""python -m easel: the same CLI as the `easel` command."""

from .cli import main

main()
