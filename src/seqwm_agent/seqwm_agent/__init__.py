"""SeqWM per-robot agent: core, simulator, trainer, nodes."""
