"""`python -m ffclr explore --checkpoint CKPT --top 50`: the crops most likely mislabelled or odd."""
from __future__ import annotations

from pathlib import Path

from ffclr.cli import add_command, workspace_from
from ffclr.commands.embed import add_crop_arguments
from ffclr.data.csv_files import write_csv


def register(subparsers) -> None:
    parser = add_command(subparsers, "explore",
                         "list the most suspicious crops: likely label errors (cleanlab on "
                         "cross-validated probe probabilities) and outliers (kNN distance)")
    parser.add_argument("--checkpoint", "--checkpoint_path", required=True, metavar="CKPT")
    add_crop_arguments(parser)
    parser.add_argument("--top", type=int, default=50, help="how many to list (default: 50)")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write every crop's scores here")
    parser.add_argument("--umap-html", type=Path, metavar="PATH",
                        help="also save an interactive UMAP of the embeddings (plotly HTML)")
    parser.set_defaults(func=run)


def run(args) -> int:
    
    from ffclr.eval.embedding import embed_crop_set
    from ffclr.eval.evaluate import resolve_crop_set
    from ffclr.eval.explore import review_table
    from ffclr.progress import tqdm_progress

    workspace = workspace_from(args)
    crops = resolve_crop_set(workspace, args.data, args.dataset, args.split)
    with tqdm_progress("crop") as progress:
        embeddings = embed_crop_set(crops, args.checkpoint, workspace, progress=progress)
    rows = review_table(embeddings.features, crops)
    flagged = sum(r["label_issue"] for r in rows)
    print(f"{len(rows)} crops, {flagged} flagged as likely label issues; top {args.top}:")
    print(f"{'crop':>6}  {'issue':5}  {'quality':>7}  {'outlier':>7}  label → suggested  path")
    for r in rows[:args.top]:
        crop_id = "-" if r["crop_id"] is None else r["crop_id"]
        print(f"{crop_id:>6}  {'yes' if r['label_issue'] else '':5}  {r['label_quality']:7.3f}  "
              f"{r['outlier_distance']:7.3f}  {r['label']} → {r['suggested']}  {r['path']}")
    if args.csv:
        write_csv(args.csv, list(rows[0]), rows)
        print(f"scores of every crop: {args.csv}")
    if args.umap_html:
        import plotly.express as px

        layout = embeddings.umap(workspace)
        names = [crops.class_names[i] for i in crops.labels]
        figure = px.scatter(x=layout[:, 0], y=layout[:, 1], color=names,
                            hover_name=[Path(p).name for p in crops.paths],
                            title=f"UMAP of {len(crops)} crops", width=1100, height=800)
        args.umap_html.parent.mkdir(parents=True, exist_ok=True)
        figure.write_html(args.umap_html)
        print(f"UMAP: {args.umap_html}")
    return 0
