"""Gallery commands: ``gallery build`` and ``gallery search`` (a faiss index of embedded person crops).

``app`` holds one group, ``gallery``, with the two commands (``mvd-edge gallery build ...``).
faiss, OpenCV, onnxruntime and :mod:`mvd_edge.gallery` are imported inside the commands, so
``--help`` stays light; without faiss the commands say ``pip install 'mvd-edge[gallery]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mvd_edge.cli._common import OVERWRITE_HELP, check_outputs, console, friendly
from mvd_edge.core.errors import UsageError

app = typer.Typer()
gallery_app = typer.Typer(no_args_is_help=True, help="Large galleries of person crops on faiss: build an index of "
                                                     "embedded crops, search it with query images.")
app.add_typer(gallery_app, name="gallery")

KIND_HELP = "flat (exact), ivf, ivfpq (re-ranked), hnsw, or auto (flat below 50k entries, ivf above)"


@gallery_app.command("build")
@friendly
def build(
    crops_dir: Annotated[Path, typer.Argument(help="folder of crops: CROPS_DIR/<id>/<anything>.jpg (id = the "
                                                   "image's folder; an image directly in it: <id>_<anything>.jpg)")],
    model: Annotated[Path, typer.Option(help="embedding engine (+sidecar), ONNX graph or checkpoint")],
    out: Annotated[Path, typer.Option(help="gallery folder to write (index.faiss + gallery.json)")],
    index: Annotated[str, typer.Option(help=KIND_HELP)] = "auto",
    nlist: Annotated[Optional[int], typer.Option(help="ivf/ivfpq lists (default 4*sqrt(N), >= 39 vectors each)")] = None,
    nprobe: Annotated[int, typer.Option(help="ivf/ivfpq lists searched per query (saved as the default)")] = 64,
    ef_search: Annotated[int, typer.Option(help="hnsw search breadth (saved as the default)")] = 64,
    batch_size: Annotated[int, typer.Option(help="crops embedded per batch")] = 64,
    device: Annotated[Optional[str], typer.Option(help="engine device (default: the engine's)")] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Embed every crop under CROPS_DIR with an engine and save a searchable gallery to --out."""
    from mvd_edge.gallery.index import KIND_CHOICES, IndexParams, faiss_module

    if index not in KIND_CHOICES:
        raise UsageError(f"--index must be one of {', '.join(KIND_CHOICES)}, got {index!r}")
    check_outputs({"--out": out}, {"crops folder": crops_dir, "--model": model}, overwrite)
    faiss_module()  # fail before embedding anything when faiss is missing
    from mvd_edge.gallery.store import build_from_crops
    from mvd_edge.runtime import load_embedder

    params = IndexParams(nlist=nlist, nprobe=nprobe, ef_search=ef_search)
    embedder = load_embedder(model, device=device)
    g = build_from_crops(crops_dir, embedder, kind=index, params=params, batch_size=batch_size)
    g.info["embedder"]["engine"] = str(model)
    g.save(out)
    n_ids = len(set(g.ids))
    console.print(f"[green]wrote[/] {escape(str(out))}: {g.count} crops of {n_ids} ids, {g.dim}-d, index {g.kind}"
                  + (f" (requested {index})" if g.kind != index else ""), highlight=False)
    if g.fallback:
        console.print(f"[yellow]note:[/] {escape(g.fallback)}", highlight=False)
    if g.info.get("ignored_files"):
        console.print(f"{g.info['ignored_files']} non-image files ignored")


@gallery_app.command("search")
@friendly
def search(
    gallery_dir: Annotated[Path, typer.Argument(help="gallery folder written by `mvd-edge gallery build`")],
    model: Annotated[Path, typer.Option(help="embedding engine of the same model the gallery was built with")],
    query: Annotated[Path, typer.Option(help="a query image, or a folder of them (searched one by one)")],
    k: Annotated[int, typer.Option("-k", "--top-k", help="results per query")] = 10,
    nprobe: Annotated[Optional[int], typer.Option(help="ivf/ivfpq lists searched (default: the gallery's)")] = None,
    ef_search: Annotated[Optional[int], typer.Option(help="hnsw search breadth (default: the gallery's)")] = None,
    device: Annotated[Optional[str], typer.Option(help="engine device (default: the engine's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON instead of tables")] = False,
) -> None:
    """The top-k gallery entries of each query image: ids, cosine scores and metadata."""
    from mvd_edge.gallery.index import Gallery, GalleryError
    from mvd_edge.gallery.store import IMAGE_SUFFIXES, check_embedder, embed_images
    from mvd_edge.runtime import load_embedder

    if k < 1:
        raise UsageError(f"-k must be >= 1, got {k}")
    g = Gallery.load(gallery_dir)
    if query.is_dir():
        paths = sorted(p for p in query.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(query).parts))
        if not paths:
            raise GalleryError(f"no .jpg/.jpeg/.png image under {query}")
    elif query.is_file():
        paths = [query]
    else:
        raise GalleryError(f"query not found: {query}")
    embedder = load_embedder(model, device=device)
    check_embedder(g, embedder, model)  # the query vectors must be comparable with the gallery's
    vectors = embed_images(paths, embedder, progress=not as_json and len(paths) > 64)
    scores, rows = g.search_rows(vectors, k, nprobe=nprobe, ef_search=ef_search)
    results = []
    for p, srow, rrow in zip(paths, scores, rows):
        hits = [{"rank": j + 1, "id": g.ids[r], "score": round(float(s), 6), "metadata": g.metadata[r]}
                for j, (s, r) in enumerate(zip(srow, rrow)) if r >= 0]
        results.append({"query": str(p), "results": hits})
    if as_json:
        typer.echo(json.dumps({"gallery": str(gallery_dir), "kind": g.kind, "count": g.count, "k": k,
                               "queries": results}, indent=1))
        return
    for res in results:
        table = Table(title=f"{escape(res['query'])}: top {len(res['results'])} of {g.count} ({g.kind})",
                      title_justify="left", show_edge=False)
        for col in ("rank", "id", "score", "metadata"):
            table.add_column(col, justify="right" if col in ("rank", "score") else "left")
        for h in res["results"]:
            meta = ", ".join(f"{key}={val}" for key, val in h["metadata"].items())
            table.add_row(str(h["rank"]), escape(str(h["id"])), f"{h['score']:.4f}", escape(meta))
        console.print(table)
