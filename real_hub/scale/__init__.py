"""Scaling out: ``curate`` on Ray Data, and the source-file helpers it shares with the default engine.

:mod:`real_hub.scale.ray_engine` runs the pipeline on Ray; :mod:`real_hub.scale.files` lists and reads
source files. Nothing here is imported by ``import real_hub``; Ray is imported only when the Ray engine
runs (install it with ``pip install "real-hub[ray]"``). The processors need nothing from here to run
under Ray Data's ``map_batches``: the processor contract (:mod:`real_hub.processor`) adapts Ray's batch
formats.
"""
