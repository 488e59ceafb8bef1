"""Job kind data.entigraph: synthetic continued-pretraining lines from a domain corpus through a teacher endpoint."""

from __future__ import annotations

from pydantic import Field

from engine.data.entigraph import EntigraphConfig
from engine.data.job import _build
from engine.jobs import job_kind


class EntigraphJobConfig(EntigraphConfig):
    out: str = Field("entigraph.jsonl", description="output file name under outputs/")


EXAMPLE = '''# data.entigraph: explode a small domain corpus into synthetic continued-pretraining text (EntiGraph):
# entities per chunk, relation statements over entity pairs and triples, paraphrases, summaries and QA
# pairs from an OpenAI-compatible teacher; a judge keeps what is faithful to its chunk; exact and near
# duplicates go; the guard drops anything overlapping a gate. Every teacher call is cached on disk, so an
# interrupted job reruns without paying twice. Output: outputs/entigraph.jsonl ({"text", "source", "kind"}
# lines for train.cpt), entigraph_report.json + .md (tokens, outcomes, verdicts) and the guard report.
kind = "data.entigraph"
name = "entigraph-knowledge"

chunk_tokens = 512               # tokens per chunk
overlap_tokens = 64              # tokens shared with the previous chunk
# tokenizer = "Qwen/Qwen3-0.6B"  # chunk and count with this tokenizer (default: whitespace tokens)
max_entities = 12
qa_pairs = 3
keep_source = true               # also keep each corpus document as it is (kind "source")
near_dup_threshold = 0.8         # word 5-gram Jaccard
window = 16                      # chunks per round
seed = 0
guard_against = ["core"]         # suites, gates, "gate=FILE" or test files; add "llmzszl" for exam knowledge
out = "entigraph.jsonl"

[[corpus]]
path = "corpus/*.txt"            # a file or a glob
format = "auto"                  # text (one document per file), jsonl ({text, id, licence}), wiki ({title, text})
licence = "CC-BY-4.0"

# [[corpus]]
# path = "plwiki_subset.jsonl"
# format = "wiki"                # licence defaults to CC-BY-SA-4.0

[teacher]
url = "http://127.0.0.1:8000/v1" # any OpenAI-compatible API (vLLM, llama.cpp, a hosted one)
model = "deepseek-v4-pro"
api_key_env = "SLAYER_TEACHER_API_KEY"  # the key is read from this variable, never written anywhere
concurrency = 8
timeout_s = 300.0
retries = 4
backoff_s = 1.0
temperature = 0.7
max_tokens = 512
structured = "off"               # json_object / json_schema: constrain replies to a JSON schema

[judge]                          # faithfulness filter; url/model/api_key_env default to the teacher's
enabled = true
max_tokens = 64                  # verdicts are one word
on_unparseable = "drop"

[variants]                       # requests per chunk by kind: 5-20 in all
paraphrase = 3
summary = 1
qa = 2
pairs = 3
triples = 2
'''


@job_kind("data.entigraph", EntigraphJobConfig,
          "EntiGraph synthetic CPT data from a corpus via a teacher endpoint (judged, deduplicated, guarded)", EXAMPLE,
          needs_ml=False)
def run_entigraph(config: EntigraphJobConfig, ctx) -> None:
    from engine.data.entigraph import build_entigraph

    _build(ctx, build_entigraph, config, "entigraph", "data_report")
