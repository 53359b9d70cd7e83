"""Conversion on Apache Beam (python -m tfrecords_tools.convert ... --runner beam [--beam-args "..."]): the
per-sample work and the shard writing of facekit.records.shards as a Beam pipeline.

items -> convert each (the same settings.prepare and encode as the local converter) -> group by shard -> write
each shard (the same write_shard_and_preview, so the same bytes) -> the shards' manifest entries. The main process
plans, resumes and finishes the conversion (manifest) exactly as the local converter does. The DirectRunner runs
it by default; Dataflow, Flink or Spark run it through Beam's pipeline options, where the input and the output
folder must be paths that every worker reads and writes (a shared or mounted filesystem).

Beam is an optional extra (requirements-beam.txt): it pins protobuf<7 and numpy<2.5.
"""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from facekit.files import read_json, write_json
from facekit.records import shards

SHARD_ENTRIES = "beam-shards.json"  # the pipeline's result, read back by the main process and then removed


def convert_shards_on_beam(todo_items: list, items: list, input_dir: str | None, output_dir: str, settings,
                           name: str, num_shards: int, beam_args) -> dict:
    """Convert and write the shards of todo_items [(shard index, item index)]; returns {shard index: entry}."""
    entries_path = os.path.join(output_dir, SHARD_ENTRIES)
    tasks = [(k, i, items[i]) for k, i in todo_items]
    print(f"converting {len(tasks)} samples into {len(set(k for k, _ in todo_items))} shard(s) on Beam "
          f"({' '.join(beam_args) or 'DirectRunner'})", flush=True)
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        _ = (pipeline
             | "items" >> beam.Create(tasks, reshuffle=True)
             | "convert" >> beam.ParDo(ConvertItem(input_dir, settings))
             | "by shard" >> beam.GroupByKey()
             | "write shards" >> beam.ParDo(WriteShard(output_dir, settings, name, num_shards))
             | "entries" >> beam.combiners.ToList()
             | "save entries" >> beam.Map(lambda entries: write_json(entries_path, sorted(entries))))
    entries = {int(k): entry for k, entry in read_json(entries_path)}
    os.remove(entries_path)
    return entries


class ConvertItem(beam.DoFn):
    """(shard, item index, item) -> (shard, (item index, item name, (record, example) or skip reason))."""

    def __init__(self, input_dir: str | None, settings):
        self.input_dir, self.settings = input_dir, settings

    def setup(self):
        shards.init_worker(self.input_dir, self.settings)

    def process(self, task):
        k, i, item = task
        yield k, (i, shards.item_name(item), shards.convert_item(item))


class WriteShard(beam.DoFn):
    """(shard, converted items in any order) -> (shard, manifest entry), writing the shard in item order."""

    def __init__(self, output_dir: str, settings, name: str, num_shards: int):
        self.output_dir, self.settings, self.name, self.num_shards = output_dir, settings, name, num_shards

    def process(self, shard):
        k, converted = shard
        results = [(source, result) for _, source, result in sorted(converted, key=lambda c: c[0])]
        yield k, shards.write_shard_and_preview(self.output_dir, self.name, k, self.num_shards, results,
                                                 self.settings)
