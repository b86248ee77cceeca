"""``python -m civictwin``: the ``civictwin`` command, for an environment without its console script."""

from civictwin.entry import main

if __name__ == "__main__":
    main()
