"""The audio library everything else stands on: decoding a file to mono samples at the pipeline's rate
(decode), the one amplitude and silence rule (levels), checks of what a path is before it is opened
(filecheck), the walk of a data root and its one rule for what counts as a track (discovery), and what must
stay together in one split (groups).

It imports only the configuration below it, never a component, a model or the pipeline, so ingestion,
serving, the web page and the tagger share one reading of a file.
"""
