"""SeqWM bringup: node graph, launch, demo runner."""
