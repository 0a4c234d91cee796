"""``python -m emowatch.streams.cli``: the same CLI as the ``emowatch`` console script."""
from emowatch.streams.cli.main import main

main()
