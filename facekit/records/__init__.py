"""The data wing every model reads: the TFRecord schema (schema: encode and parse side by side; manifest: the
folder layout), the conversion engine (convert, shards: resumable workers; beam_runner: the same on Apache Beam),
verify/repair, the synthetic sets, and one reader per raw format (datasets/)."""
