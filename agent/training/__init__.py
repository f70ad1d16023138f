"""Training, evaluation and simulation tools, apart from the serving code.

`heartline train`, `heartline eval` and `heartline policy evaluate` import
these modules inside the command; serving never imports this package, so a
server needs neither the modules nor the ``train`` extra's dependencies.
"""
