"""A document pipeline: split, score in parallel, reduce, with progress, state and metrics.

Stages of ``analyze_documents``:

1. ``split_documents`` cuts every document into chunks of at most ``chunk_words`` words.
2. ``score_chunk`` runs once per chunk, all in parallel (``map``): it counts how often
   each keyword occurs in the chunk. The keywords come from request state.
3. ``merge_scores`` folds the chunk scores into one tally (``reduce``).
4. ``build_summary`` turns the tally into the answer: counts, the top keywords and the
   best chunk, plus the stage results that the earlier stages kept in request state.

The entry point reports progress as stages complete (``GET .../requests/{id}`` shows it),
records a timer and counters (``metrics``), and everything is deterministic: no network,
no randomness::

    curl -F code=@examples/document_pipeline.py http://127.0.0.1:8900/applications
    curl -si -X POST 'http://127.0.0.1:8900/applications/analyze_documents?wait=60' \\
         -F 'documents=[{"id": "a", "text": "Durable functions retry. Durable state."},
                        {"id": "b", "text": "Containers scale with requests."}]' \\
         -F 'keywords=["durable", "scale", "retry"]' -F 'chunk_words=4'
    # X-Cove-Request-Id: <id>
    # {"documents":2,"chunks":3,"matched_chunks":2,"total_score":4,
    #  "keyword_counts":{"durable":2,"retry":1,"scale":1}, "top_keywords":[...],
    #  "best_chunk":{"doc_id":"a","index":0,"score":3,"text":"Durable functions retry. Durable"},
    #  "stages":{"split":3,"scored":3}}
    curl -s 'http://127.0.0.1:8900/applications/analyze_documents/requests/<id>'
    # status, every function call (one score_chunk per chunk), progress, metrics
"""

import re
import time

from pydantic import BaseModel

from cove import RequestContext, RequestError, application, function

DEFAULT_KEYWORDS = ["durable", "retry", "scale", "state", "container", "request"]
WORD = re.compile(r"[a-z0-9]+")
STAGES = 4


class Document(BaseModel):
    id: str
    text: str


class Chunk(BaseModel):
    doc_id: str
    index: int
    text: str


class ChunkScore(BaseModel):
    doc_id: str
    index: int
    text: str
    score: int
    hits: dict[str, int]


class Tally(BaseModel):
    """What the reduce step accumulates."""

    chunks: int = 0
    matched_chunks: int = 0
    total_score: int = 0
    keyword_counts: dict[str, int] = {}
    best: ChunkScore | None = None


class KeywordCount(BaseModel):
    keyword: str
    count: int


class BestChunk(BaseModel):
    doc_id: str
    index: int
    score: int
    text: str


class Summary(BaseModel):
    documents: int
    chunks: int
    matched_chunks: int
    total_score: int
    keyword_counts: dict[str, int]
    top_keywords: list[KeywordCount]
    best_chunk: BestChunk | None
    stages: dict[str, int]


def _normalize(word: str) -> str:
    """A deliberately simple stemmer: 'containers' and 'container' count as one keyword."""
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@function(description="Splits documents into chunks of at most chunk_words words.")
def split_documents(documents: list[Document], chunk_words: int) -> list[Chunk]:
    chunks = []
    for doc in documents:
        words = doc.text.split()
        for index, start in enumerate(range(0, len(words), chunk_words)):
            text = " ".join(words[start : start + chunk_words])
            chunks.append(Chunk(doc_id=doc.id, index=index, text=text))
    RequestContext.get().state.set("stage.split", len(chunks))
    return chunks


@function(description="Scores one chunk: how often each keyword occurs in it.")
def score_chunk(chunk: Chunk) -> ChunkScore:
    ctx = RequestContext.get()
    keywords: list[str] = ctx.state.get("keywords") or []
    wanted = {_normalize(k): k for k in keywords}
    hits: dict[str, int] = {}
    for word in WORD.findall(chunk.text.lower()):
        keyword = wanted.get(_normalize(word))
        if keyword is not None:
            hits[keyword] = hits.get(keyword, 0) + 1
    ctx.metrics.counter("chunks_scored")  # counters add up across every call
    return ChunkScore(
        doc_id=chunk.doc_id,
        index=chunk.index,
        text=chunk.text,
        score=sum(hits.values()),
        hits=dict(sorted(hits.items())),
    )


@function(description="Adds one chunk score into the running tally.")
def merge_scores(tally: Tally, score: ChunkScore) -> Tally:
    counts = dict(tally.keyword_counts)
    for keyword, n in score.hits.items():
        counts[keyword] = counts.get(keyword, 0) + n
    # Strictly better only: among equal scores the earliest chunk wins (reduce keeps order).
    best = score if tally.best is None or score.score > tally.best.score else tally.best
    return Tally(
        chunks=tally.chunks + 1,
        matched_chunks=tally.matched_chunks + (score.score > 0),
        total_score=tally.total_score + score.score,
        keyword_counts=dict(sorted(counts.items())),
        best=best,
    )


@function(description="Turns the tally into the final summary.")
def build_summary(tally: Tally, documents: int, top: int) -> Summary:
    state = RequestContext.get().state
    ranked = sorted(tally.keyword_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    best = tally.best
    return Summary(
        documents=documents,
        chunks=tally.chunks,
        matched_chunks=tally.matched_chunks,
        total_score=tally.total_score,
        keyword_counts=tally.keyword_counts,
        top_keywords=[KeywordCount(keyword=k, count=n) for k, n in ranked],
        best_chunk=(
            BestChunk(doc_id=best.doc_id, index=best.index, score=best.score, text=best.text)
            if best is not None and best.score > 0
            else None
        ),
        stages={"split": state.get("stage.split", -1), "scored": state.get("stage.scored", -1)},
    )


@application(tags={"example": "pipeline"})
@function(description="Scores documents against keywords and summarizes the matches.")
def analyze_documents(
    documents: list[Document],
    keywords: list[str] | None = None,
    chunk_words: int = 40,
    top: int = 3,
) -> Summary:
    started = time.perf_counter()
    if chunk_words < 1:
        raise RequestError(f"chunk_words must be at least 1, got {chunk_words}")
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise RequestError("document ids must be unique")
    ctx = RequestContext.get()
    ctx.state.set("keywords", [k.lower() for k in (keywords or DEFAULT_KEYWORDS)])
    ctx.metrics.counter("documents", len(documents))

    ctx.progress.update(0, STAGES, "splitting documents")
    chunks = split_documents(documents, chunk_words)

    ctx.progress.update(1, STAGES, f"scoring {len(chunks)} chunks")
    scores = score_chunk.map(chunks)
    ctx.state.set("stage.scored", len(scores))

    ctx.progress.update(2, STAGES, "merging scores")
    tally = merge_scores.reduce(scores, Tally())

    ctx.progress.update(3, STAGES, "building the summary")
    summary = build_summary(tally, len(documents), top)

    ctx.progress.update(STAGES, STAGES, "done")
    ctx.metrics.timer("pipeline_seconds", time.perf_counter() - started)
    return summary


if __name__ == "__main__":
    from cove import run_local_application

    docs = [
        Document(id="a", text="Durable functions retry. Durable state."),
        Document(id="b", text="Containers scale with requests."),
    ]
    request = run_local_application(analyze_documents, docs, ["durable", "scale", "retry"], 4)
    print(request.output().model_dump_json(indent=2))
