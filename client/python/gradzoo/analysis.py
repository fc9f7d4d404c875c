"""Typed calls for linear regions, task orthogonality and network embeddings.

These are methods of :class:`gradzoo.Client` (mixed in from here to keep client.py about zoos,
jobs and fields). Each returns dataclasses with numpy arrays; every field's meaning and formula
is the one documented on its wire message (gradient.proto, analysis.proto, embedding.proto), and
``raw`` keeps that message for anything not surfaced here.

    counts = client.count_regions("lambda/m0000", grid=[(0, 0, 1, 200), (1, 0, 1, 200)])
    part = client.region_partition("lambda/m0000", bounds=[(0, 0, 1), (1, 0, 1)])
    orth = client.orthogonality("lambda")            # seed 001: score vs lambda
    job = client.train_embedder("poly", zoos=["poly"]); job.wait()
    vectors = client.embed("poly", client.models("poly"))   # [n, embedding_size]
"""

import dataclasses
from typing import Any, List, Optional, Tuple

import numpy as np

from . import _stubs
from ._points import fill_grid, fill_point_set
from .jobs import Job
from .tensors import decode_tensor
from .types import enum_name, model_name, zoo_name

__all__ = [
    "RegionCount", "LayerSplintering", "RegionPartition", "Region", "ZooOrthogonality",
    "SettingScores", "Embedder", "Neighbor", "ProbeScores", "embedder_name",
]

_METHODS = {"pca": "ORTHOGONALITY_METHOD_PCA", "cos": "ORTHOGONALITY_METHOD_COS",
            "gram": "ORTHOGONALITY_METHOD_GRAM", "functional": "ORTHOGONALITY_METHOD_FUNCTIONAL"}
_SIDES = {"pre": "LAYER_SIDE_PRE", "post": "LAYER_SIDE_POST"}


def embedder_name(name):
    """"embedders/e" for "e" or the full name; also accepts an :class:`Embedder`."""
    name = getattr(name, "name", name)
    return name if name.startswith("embedders/") else "embedders/" + name


@dataclasses.dataclass
class LayerSplintering:
    """Unique gradients of each output w.r.t. one hidden layer (``layer`` 0 = first hidden),
    before (``unique_pre``) and after (``unique_post``) its nonlinearity."""
    layer: int
    unique_pre: List[int]
    unique_post: List[int]


@dataclasses.dataclass
class RegionCount:
    """Linear regions met by a point set (CountLinearRegionsResponse).

    ``regions``: distinct activation patterns (exact for ReLU); ``unique_gradients``: per output
    the number of distinct input gradients; ``combinations``: distinct tuples of all outputs'
    gradients; ``outputs_coincide``: every output's count equals ``combinations``;
    ``region_sizes``: points per region, largest first (numpy int64); ``saturated``: most points
    sit alone in their region (sample more densely before trusting the count); ``clustered``:
    regions were found by clustering gradients with ``tolerance`` (GELU, tanh), not exactly.
    """
    regions: int
    unique_gradients: List[int]
    combinations: int
    outputs_coincide: bool
    region_sizes: np.ndarray
    saturated: bool
    clustered: bool
    tolerance: float
    points: int
    singleton_regions: int
    layers: List[LayerSplintering]
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m):
        return cls(regions=m.regions, unique_gradients=list(m.unique_gradients_per_output),
                   combinations=m.unique_gradient_combinations,
                   outputs_coincide=m.outputs_coincide,
                   region_sizes=np.array(m.region_sizes, dtype=np.int64),
                   saturated=m.saturated, clustered=m.clustered, tolerance=m.tolerance,
                   points=m.points, singleton_regions=m.singleton_regions,
                   layers=[LayerSplintering(l.layer, list(l.unique_pre), list(l.unique_post))
                           for l in m.layers],
                   raw=m)


@dataclasses.dataclass
class Region:
    """One polygon of an exact 2-D partition: ``vertices`` [V, 2] counter-clockwise in slice
    coordinates, ``area``, ``gradient`` [outputs, 2] (d y_o / d slice axes) and ``offset``
    [outputs]: on the region y = gradient @ (u, v) + offset. ``pattern``: the packed activation
    pattern (gradient.proto, RegionPolygon)."""
    vertices: np.ndarray
    area: float
    gradient: np.ndarray
    offset: np.ndarray
    pattern: bytes


@dataclasses.dataclass
class RegionPartition:
    """The exact partition of a 2-D slice into linear regions (ComputeRegionPartitionResponse):
    ``region_count`` regions (``regions``, one :class:`Region` each, covering ``slice_area``),
    per output the number of distinct gradients, and distinct gradient combinations."""
    region_count: int
    regions: List[Region]
    slice_area: float
    unique_gradients: List[int]
    combinations: int
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m):
        regions = [Region(vertices=decode_tensor(r.vertices), area=r.area,
                          gradient=decode_tensor(r.gradient), offset=decode_tensor(r.offset),
                          pattern=bytes(r.activation_pattern)) for r in m.regions]
        return cls(region_count=m.region_count, regions=regions, slice_area=m.slice_area,
                   unique_gradients=list(m.unique_gradients_per_output),
                   combinations=m.unique_gradient_combinations, raw=m)


@dataclasses.dataclass
class SettingScores:
    """Orthogonality scores of one (task, variant, lambda, layer) setting: ``scores`` (numpy,
    one per non-degenerate model in seed order), their ``mean`` and ``stddev`` (ddof 0),
    ``models`` [(model name, seed, score, degenerate)] and ``degenerate`` (models left out)."""
    task: str
    variant: int
    lambda_: float
    layer: int
    side: str
    scores: np.ndarray
    mean: float
    stddev: float
    models: List[Tuple[str, int, float, bool]]
    degenerate: int


@dataclasses.dataclass
class ZooOrthogonality:
    """Task orthogonality over a zoo (ScoreZooOrthogonalityResponse): every score lies in
    [0, 1], 1 = the two outputs use independent directions of the layer (analysis.proto,
    OrthogonalityMethod). ``spearman[i]``: rank correlation of the scores with lambda over every
    model, for ``layers[i]``; ``spearman_of_means[i]``: the same over the setting means."""
    method: str
    layers: List[Tuple[int, str]]
    settings: List[SettingScores]
    spearman: np.ndarray
    spearman_of_means: np.ndarray
    models_scored: int
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m):
        a = _stubs.module("analysis_pb2")
        side = lambda ref: enum_name(a.LayerSide, ref.side, "LAYER_SIDE_").lower() or "post"
        settings = [SettingScores(
            task=s.task, variant=s.variant, lambda_=getattr(s, "lambda"), layer=s.layer.index,
            side=side(s.layer), scores=np.array(s.scores, dtype=np.float64), mean=s.mean,
            stddev=s.stddev, degenerate=s.degenerate_count,
            models=[(ms.model, ms.seed, ms.score, ms.degeneracy.degenerate) for ms in s.models])
            for s in m.settings]
        return cls(method=enum_name(a.OrthogonalityMethod, m.method,
                                    "ORTHOGONALITY_METHOD_").lower(),
                   layers=[(l.index, side(l)) for l in m.layers], settings=settings,
                   spearman=np.array(m.spearman_with_lambda, dtype=np.float64),
                   spearman_of_means=np.array(m.spearman_of_means, dtype=np.float64),
                   models_scored=m.models_scored, raw=m)

    def curve(self, layer=None):
        """(lambdas, means, stddevs) as numpy arrays for one layer index (default: the first
        scored), settings in lambda order; for plotting score vs lambda."""
        layer = self.layers[0][0] if layer is None else layer
        rows = sorted((s.lambda_, s.mean, s.stddev) for s in self.settings if s.layer == layer)
        if not rows:
            raise ValueError(f"layer {layer} was not scored (scored: {self.layers})")
        lam, mean, std = (np.array(c, dtype=np.float64) for c in zip(*rows))
        return lam, mean, std


@dataclasses.dataclass
class Embedder:
    """A trained network embedder (embedding.proto, Embedder): its training zoos, sizes and the
    validation cloze loss next to the mean-gradient and interpolation baselines."""
    name: str
    zoos: List[str]
    embedding_size: int
    validation_cloze_loss: float
    mean_gradient_baseline_loss: float
    interpolation_baseline_loss: float
    input_dim: int
    output_dim: int
    steps: int
    mask_shape: str = "spans"  # "spans" or "groups"
    members: int = 1  # encoders side by side: embeddings are members * embedding_size wide
    distance_weight: float = 0.0  # function-distance term it trained with (0 = cloze only)
    raw: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def id(self):
        return self.name.split("/", 1)[1] if "/" in self.name else self.name

    @classmethod
    def from_proto(cls, m):
        groups = m.mask_shape == _stubs.module("embedding_pb2").MASK_SHAPE_GROUPS
        return cls(name=m.name, zoos=list(m.zoos), embedding_size=m.embedding_size,
                   validation_cloze_loss=m.validation_cloze_loss,
                   mean_gradient_baseline_loss=m.mean_gradient_baseline_loss,
                   interpolation_baseline_loss=m.interpolation_baseline_loss,
                   input_dim=m.input_dim, output_dim=m.output_dim, steps=m.steps,
                   mask_shape="groups" if groups else "spans", members=max(1, m.members),
                   distance_weight=m.distance_weight, raw=m)


@dataclasses.dataclass
class Neighbor:
    """A nearest neighbour: model name, cosine ``similarity`` and its task ``label``."""
    model: str
    similarity: float
    label: str


@dataclasses.dataclass
class ProbeScores:
    """Probe scores of one representation ("embedding", "untrained_encoder",
    "gradient_profile", "weight_stats"): linear classifier and k-NN accuracy on validation
    models, trained on training-split models, and ``separation``: the between-class variance
    of the training centroids over the validation models' mean squared distance to their
    class centroid (standardised features), which keeps moving where the accuracies saturate.
    ``linear_p_value`` / ``knn_p_value``: exact McNemar tests of this row's accuracy against the
    learned embedding's on the same validation models (1 for the embedding's own row); below
    0.05 the gap is unlikely to be the luck of which models were held out."""
    representation: str
    linear_accuracy: float
    knn_accuracy: float
    classes: int
    train_models: int
    validation_models: int
    separation: float = 0.0
    linear_p_value: float = 1.0
    knn_p_value: float = 1.0


class AnalysisCalls:
    """Mixin of :class:`gradzoo.Client`: regions, orthogonality, embeddings."""

    # -- linear regions ---------------------------------------------------------------------

    def count_regions(self, model, *, grid=None, fixed=None, points=None, per_layer=False,
                      tolerance=None, max_region_sizes=None, timeout=None):
        """Linear regions ("unique gradients") of ``model`` on a grid or points (the forms of
        :meth:`gradient_field`); :class:`RegionCount`. ``per_layer``: also each layer's
        splintering. ``tolerance``: clustering tolerance for non-ReLU activations (server
        default when None)."""
        g = _stubs.module("gradient_pb2")
        req = g.CountLinearRegionsRequest(model=model_name(model), per_layer=bool(per_layer))
        fill_point_set(req.points, grid, fixed, points)
        if tolerance is not None:
            req.tolerance = float(tolerance)
        if max_region_sizes is not None:
            req.max_region_sizes = int(max_region_sizes)
        return RegionCount.from_proto(self._unary("CountLinearRegions", req, timeout=timeout))

    def region_partition(self, model, bounds, *, fixed=None, max_regions=None, timeout=None):
        """The exact partition of a 2-D slice of ``model``'s input space into linear regions
        (ReLU only); :class:`RegionPartition`. ``bounds=[(input_index, lo, hi), (input_index,
        lo, hi)]``; ``fixed``: values of every input for the inputs the slice does not vary
        (default 0.5 each). ResourceExhaustedError beyond ``max_regions`` (server default
        20000)."""
        if len(bounds) != 2:
            raise ValueError("bounds= needs exactly two (input_index, lo, hi) axes")
        g = _stubs.module("gradient_pb2")
        req = g.ComputeRegionPartitionRequest(model=model_name(model))
        fill_grid(req.slice, [(int(i), lo, hi, 2) for i, lo, hi in bounds], fixed)
        if max_regions is not None:
            req.max_regions = int(max_regions)
        return RegionPartition.from_proto(
            self._unary("ComputeRegionPartition", req, timeout=timeout))

    # -- task orthogonality -----------------------------------------------------------------

    def orthogonality(self, zoo, *, method="functional", layers=None, outputs=(0, 1),
                      points=None, variance_threshold=None, center=False, timeout=None):
        """Task orthogonality of outputs ``outputs`` for every model of ``zoo``, grouped by
        setting, with the Spearman correlation against lambda (seed 001); a
        :class:`ZooOrthogonality`. ``method``: functional | pca | cos | gram; ``layers``: layer
        indices (1..L-1 hidden, post-activation) or (index, "pre"|"post") pairs, default every
        hidden layer; ``points``: an array [N, input_dim] shared by all models (default each
        model's validation inputs)."""
        a = _stubs.module("analysis_pb2")
        if method not in _METHODS:
            raise ValueError(f"method {method!r} is not one of {sorted(_METHODS)}")
        req = a.ScoreZooOrthogonalityRequest(
            zoo=zoo_name(zoo), method=a.OrthogonalityMethod.Value(_METHODS[method]),
            output_a=int(outputs[0]), output_b=int(outputs[1]), center=bool(center))
        for layer in layers or ():
            index, side = (layer, "post") if isinstance(layer, (int, np.integer)) else layer
            if side not in _SIDES:
                raise ValueError(f"layer side {side!r} is not pre or post")
            req.layers.add(index=int(index), side=a.LayerSide.Value(_SIDES[side]))
        if points is not None:
            fill_point_set(req.points, points=points)
        if variance_threshold is not None:
            req.variance_threshold = float(variance_threshold)
        return ZooOrthogonality.from_proto(
            self._unary("ScoreZooOrthogonality", req, timeout=timeout))

    # -- embeddings (seed 003) --------------------------------------------------------------

    def train_embedder(self, embedder_id, zoos, *, points_per_sample=None, mask_rate=None,
                       embedding_size=None, steps=None, seed=0, batch_models=None, hidden=None,
                       learning_rate=None, from_layer=None, to_layer=None, mask_shape=None,
                       members=None, distance_weight=None, request_id=None, timeout=None):
        """Submits a job training a cloze embedder on the training-split models of ``zoos``;
        returns its :class:`Job` at once. Unset (None) options take the server's defaults
        (job.proto, EmbedderTraining). ``from_layer``/``to_layer``: embed the sub-network from
        that layer's activations (0 = input) to that layer's pre-activations (0 = output).
        ``mask_shape``: "spans" (runs of neighbouring linear pieces, the default) or "groups"
        (independent ones). ``members``: K encoders trained with seeds seed..seed+K-1, their
        embeddings side by side (K * embedding_size wide; K times the cost).
        ``distance_weight``: w > 0 also trains the embeddings' distances to match the networks'
        function distances (1-10 on families that differ by a few percent). ``seed``: the same
        seed, options and zoos on the same server set-up (device, threads) train the same
        embedder again. ``job.wait()`` shows progress."""
        j = _stubs.module("job_pb2")
        req = j.CreateTrainingJobRequest(request_id=request_id or "")
        e = req.job.embedder_training
        e.embedder_id = embedder_name(embedder_id)[len("embedders/"):]
        e.zoos.extend(zoo_name(z) for z in ([zoos] if isinstance(zoos, str) else zoos))
        e.seed = int(seed)
        if mask_shape is not None:
            shapes = {"spans": "MASK_SHAPE_SPANS", "groups": "MASK_SHAPE_GROUPS"}
            if mask_shape not in shapes:
                raise ValueError(f"mask_shape must be 'spans' or 'groups', got {mask_shape!r}")
            e.mask_shape = getattr(_stubs.module("embedding_pb2"), shapes[mask_shape])
        for field, value in (("points_per_sample", points_per_sample), ("mask_rate", mask_rate),
                             ("embedding_size", embedding_size), ("steps", steps),
                             ("batch_models", batch_models), ("hidden", hidden),
                             ("learning_rate", learning_rate), ("from_layer", from_layer),
                             ("to_layer", to_layer), ("members", members),
                             ("distance_weight", distance_weight)):
            if value is not None:
                setattr(e, field, value)
        return Job(self, self._unary("CreateTrainingJob", req, timeout=timeout).job)

    def embedder(self, name, timeout=None):
        """One embedder ("e" or "embedders/e")."""
        return Embedder.from_proto(
            self._unary("GetEmbedder", timeout=timeout, name=embedder_name(name)).embedder)

    def embedders(self, timeout=None):
        """Every embedder (follows page tokens)."""
        out, token = [], ""
        while True:
            resp = self._unary("ListEmbedders", timeout=timeout, page_size=1000,
                               page_token=token)
            out.extend(Embedder.from_proto(e) for e in resp.embedders)
            token = resp.next_page_token
            if not token:
                return out

    def embed(self, embedder, models, *, samples=None, seed=None, timeout=None):
        """Embeddings of ``models`` (names or Models, stored or imported) as a numpy array
        [len(models), embedding_size], rows in the order given; averaged over ``samples`` point
        samples (server default when None), deterministic for a given ``seed``."""
        if isinstance(models, (str,)) or hasattr(models, "name"):
            models = [models]
        req = _stubs.module("embedding_pb2").EmbedModelsRequest(
            embedder=embedder_name(embedder), models=[model_name(m) for m in models])
        if samples is not None:
            req.samples = int(samples)
        if seed is not None:
            req.seed = int(seed)
        return decode_tensor(self._unary("EmbedModels", req, timeout=timeout).embeddings)

    def neighbors(self, embedder, model, k=5, *, zoos=(), timeout=None):
        """The ``k`` models most similar (cosine of embeddings) to ``model`` among the models of
        ``zoos`` (default every zoo the caller can read), as :class:`Neighbor`\\ s."""
        req = _stubs.module("embedding_pb2").FindNeighborsRequest(
            embedder=embedder_name(embedder), model=model_name(model), k=int(k),
            zoos=[zoo_name(z) for z in ([zoos] if isinstance(zoos, str) else zoos)])
        resp = self._unary("FindNeighbors", req, timeout=timeout)
        return [Neighbor(n.model, n.similarity, n.label) for n in resp.neighbors]

    def probe(self, embedder, zoos, target="label", k=5, timeout=None):
        """How well a linear classifier and k-NN recover ``target`` ("label", "task",
        "variant" or "lambda" of each model) from the embeddings of validation-split models, next to the server's
        baselines; a list of :class:`ProbeScores`, embedding first."""
        req = _stubs.module("embedding_pb2").RunProbeRequest(
            embedder=embedder_name(embedder), target=target, k=int(k),
            zoos=[zoo_name(z) for z in ([zoos] if isinstance(zoos, str) else zoos)])
        resp = self._unary("RunProbe", req, timeout=timeout)
        return [ProbeScores(s.representation, s.linear_accuracy, s.knn_accuracy, s.classes,
                            s.train_models, s.validation_models, s.separation,
                            s.linear_p_value, s.knn_p_value)
                for s in resp.scores]
