"""The ``activestream`` subcommands, one module each.

Every module has ``add_parser(subparsers) -> None``, which registers the command (its
``run`` as the ``func`` default), and ``run(args) -> int``, its exit status.
:mod:`activestream.cli` registers them in the order ``--help`` lists them:

- ``demo``, ``simulate``: offline simulation (:mod:`activestream.simulation`);
- ``scorer``, ``retrainer``, ``dispatcher``, ``labeler-api``: the distributed services,
  wired by :mod:`activestream.wiring`;
- ``queue``, ``produce``, ``label``, ``publish-model``: operating a stack;
- ``up``: a local stack without Docker (:mod:`activestream.supervisor`, :mod:`activestream.devstack`);
- ``bench``: the repository's benchmarks, run as a child process.

Options several commands share are in :mod:`activestream.commands.options`.
"""
