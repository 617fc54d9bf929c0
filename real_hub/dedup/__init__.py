"""Prompt hygiene: near-duplicate prompts (:func:`deduplicate`) and benchmark leakage (:func:`decontaminate`).

The modules: ``text.py`` (a prompt's text and its normalised key), ``embedding.py`` (the prompt
embedder), ``search.py`` (the FAISS index and the duplicate groups), ``report.py`` (:class:`DedupReport`),
``dedup.py`` and ``decontaminate.py`` (the two public functions, and the ``against`` sets), ``settings.py``
(the options' defaults and checks, light), ``curate.py`` (the step of :func:`real_hub.curate`).
"""
