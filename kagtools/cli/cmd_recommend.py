"""``kagtools recommend <slug> --user ID`` and ``kagtools similar <slug> --movie TITLE``
(the work is in :mod:`kagtools.workflow.recommend`)."""

from __future__ import annotations

from kagtools.cli.options import add_common, command, json_object_arg, open_ctx
from kagtools.core.table import format_table
from kagtools.errors import KagtoolsError

__all__ = ["cmd_recommend", "cmd_similar"]

DEFAULT_MODEL = "mf"  # as kagtools.workflow.recommend.DEFAULT_MODEL (not imported: --help stays light)


def _rec_options(p, what: str) -> None:
    add_common(p)
    if what == "user":
        p.add_argument("--user", required=True, type=int, help="the userId to recommend for")
    else:
        p.add_argument("--movie", required=True, help='a title as in movies.csv, e.g. "Toy Story (1995)"')
    p.add_argument("-k", type=int, default=10, help="how many movies (default 10)")
    p.add_argument("--min-ratings", type=int, default=10, help="only movies with at least this many ratings")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"pipeline run name or registered model (default {DEFAULT_MODEL}: the pipeline's cf_mf)")
    p.add_argument("--params", help="model parameters as a JSON object")
    p.add_argument("--plot", action="store_true", help="also write reports/<slug>/item_embeddings.png")


def _setup(args):
    from kagtools.workflow.recommend import catalogue, fit_recommender, id_columns

    ctx = open_ctx(args)
    movies = catalogue(ctx)
    model = fit_recommender(ctx, args.model, json_object_arg(args.params))
    counts = ctx.data.train[id_columns(ctx)[1]].value_counts()
    return ctx, movies, model, counts


@command("recommend", "top-k movies a user has not rated, by predicted rating",
         example="kagtools recommend movielens --user 1 -k 10", options=lambda p: _rec_options(p, "user"))
def cmd_recommend(args) -> None:
    from kagtools.workflow.recommend import id_columns, plot_item_embeddings, rated, recommend

    ctx, movies, model, counts = _setup(args)
    user_col, item_col = id_columns(ctx)
    if args.user not in set(ctx.data.train[user_col]):
        users = ctx.data.train[user_col]
        raise KagtoolsError(f"user {args.user} has no ratings in train.csv (users are {users.min()}..{users.max()})")
    top = recommend(model, rated(ctx), movies, counts, args.user, k=args.k, min_ratings=args.min_ratings,
                    user_col=user_col, item_col=item_col)
    rows = [{"#": n + 1, "title": r.title, "predicted": f"{r.predicted:.2f}", "ratings": r.ratings}
            for n, r in enumerate(top.itertuples())]
    print(f"top {len(rows)} for user {args.user} ({type(model).__name__}, movies with >= {args.min_ratings} ratings):")
    print(format_table(rows, ["#", "title", "predicted", "ratings"]))
    if args.plot:
        print(f"embedding plot: {plot_item_embeddings(ctx, model, movies, counts)}")


@command("similar", "movies nearest to one in the learned item embeddings",
         example='kagtools similar movielens --movie "Toy Story (1995)"',
         options=lambda p: _rec_options(p, "movie"))
def cmd_similar(args) -> None:
    from kagtools.workflow.recommend import find_movie, plot_item_embeddings, similar_items

    ctx, movies, model, counts = _setup(args)
    movie = find_movie(movies, args.movie)
    near = similar_items(model, movie, movies, counts, k=args.k, min_ratings=args.min_ratings)
    rows = [{"#": n + 1, "title": r.title, "similarity": f"{r.similarity:.3f}", "ratings": r.ratings}
            for n, r in enumerate(near.itertuples())]
    print(f"nearest to {movies.loc[movie, 'title']} ({type(model).__name__} item embeddings, cosine):")
    print(format_table(rows, ["#", "title", "similarity", "ratings"]))
    if args.plot:
        print(f"embedding plot: {plot_item_embeddings(ctx, model, movies, counts)}")
