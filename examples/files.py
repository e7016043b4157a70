"""Files in and out: ``File`` parameters receive uploads as raw bytes, a ``File`` return
value becomes the HTTP response body with the file's content type.

Upload a file as a multipart part named after the parameter::

    curl -F code=@examples/files.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/uppercase?wait=30' \\
         -F 'file=@notes.txt;type=text/plain'
    # the same text, upper-cased, with Content-Type: text/plain

Mix a file with JSON arguments; this one answers with a generated CSV (``text/csv``)::

    curl -X POST 'http://127.0.0.1:8900/applications/word_frequencies?wait=30' \\
         -F 'file=@notes.txt' -F 'top=3' -o frequencies.csv

A file in, JSON out::

    curl -X POST 'http://127.0.0.1:8900/applications/file_info?wait=30' -F 'file=@notes.txt'
    # {"size":..., "content_type":"text/plain", "lines":..., "sha256":"..."}

A ``File`` also passes between functions as is (``count_words`` below gets the upload).
"""

import csv
import hashlib
import io
import re
from collections import Counter

from cove import File, RequestError, application, function

WORD = re.compile(r"[a-z0-9']+")


@application()
@function(description="Upper-cases a text file.")
def uppercase(file: File) -> File:
    try:
        text = file.content.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("uppercase needs a UTF-8 text file") from None
    return File(text.upper().encode("utf-8"), file.content_type)


@function(description="Counts the words of a text file.")
def count_words(file: File) -> dict[str, int]:
    return dict(Counter(WORD.findall(file.content.decode("utf-8", errors="replace").lower())))


@application()
@function(description="The most frequent words of a text file, as CSV.")
def word_frequencies(file: File, top: int = 10) -> File:
    counts = count_words(file)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "word", "count"])
    for rank, (word, count) in enumerate(ranked, start=1):
        writer.writerow([rank, word, count])
    return File(out.getvalue().encode("utf-8"), "text/csv")


@application()
@function(description="Size, type, line count and checksum of an uploaded file.")
def file_info(file: File) -> dict[str, int | str]:
    return {
        "size": len(file.content),
        "content_type": file.content_type,
        "lines": file.content.count(b"\n"),
        "sha256": hashlib.sha256(file.content).hexdigest(),
    }


if __name__ == "__main__":
    from cove import run_local_application

    text = File(b"the cat and the hat\n", "text/plain")
    print(run_local_application(uppercase, text).output().content)
    print(run_local_application(word_frequencies, text, 3).output().content.decode())
