"""The offline tools, apart from the nodes: training the models (``train``), making
training material (``synth``, ``sounds``, ``draw``), mapping songs (``analyze``) and music
videos (``render``), with the commands that run them (``commands.add_parsers``).

They use the engine and the nodes; neither imports them. The command line
(``tonegraph.engine.cli``) composes the engine's commands with these.
"""
