"""mkdocs hook: the configuration reference, generated from ``activestream.config.Settings``.

Replaces ``<!-- generated: settings -->`` with one table row per ``Settings`` field: its
environment variable, default, allowed values (``activestream.config.RANGES``) and the
description below. The build fails when a field has no description or a description names
a field that no longer exists, so the page cannot drift from the code.
"""

from __future__ import annotations

import dataclasses

from activestream import config

MARKER = "<!-- generated: settings -->"

# What each Settings field means, keyed by field name.
DESCRIPTIONS: dict[str, str] = {
    "redis_url": "the Redis holding the queue; services: required; `simulate` / `demo`: `REDIS_URL` if set, "
    "else a local redis-server they start",
    "kafka_bootstrap_servers": "Kafka for the distributed mode; services: required; `simulate` / `demo`: an in-process bus",
    "topic_prefix": "topic names are `{prefix}.items`, `{prefix}.labels`, ..., consumer groups `{prefix}.scorer`, ...; unset: "
    "the namespace, so each campaign has its own (`activestream` for the default namespace, or one that cannot name a topic)",
    "namespace": "Redis key namespace (one per campaign); no `:` (one namespace's keys would sit inside another's) "
    "or glob characters `*?[]\\`",
    "partitions": "partitions of the topics the services create",
    "replication_factor": "replication factor of the topics the services create",
    "strategy": "scoring strategy and batch mode (`bald` / `vote_entropy`: the retrainer trains a 5-head committee; `albl`: the strategy bandit)",
    "seed": "seed of the strategy's random parts (random scores, the control slice, batch sampling)",
    "batch_size": "scorer micro-batch",
    "n_features": "feature vector length, recorded for the namespace (in Redis); unset: the first valid item ever queued "
    "fixes it, and items of another length are dead letters. Set it so that a stray first item cannot: a scorer "
    "started with a length the namespace does not hold stops with an error naming both (`activestream queue info` "
    "shows what a namespace holds; `queue clear --yes` starts it afresh). A re-rank ranks last any pending item the "
    "model cannot read (another width), rather than failing",
    "feature_names": "comma-separated field order for items whose `features` is a named-field record "
    "(`{\"age\": 41, ...}`); without it such items are dead letters",
    "explore": "random-control share of leased batches and of what the dispatcher sends (the fixed share: with "
    "`ACTIVESTREAM_EXPLORE_ADAPTIVE=0`)",
    "explore_adaptive": "`1`: the control share follows the live estimates instead of `ACTIVESTREAM_EXPLORE`: "
    "`ACTIVESTREAM_EXPLORE_HIGH` while the live version has no accuracy estimate or its 95% interval is wider than "
    "`ACTIVESTREAM_EXPLORE_WIDTH`, else `ACTIVESTREAM_EXPLORE_LOW` (the labeler API, the dispatcher, the Label Studio "
    "connector; `simulate --explore-adaptive`). Its AUC cost against a fixed 10% is measured in the benchmarks",
    "explore_high": "adaptive control share: the share while the live estimates are missing or too uncertain",
    "explore_low": "adaptive control share: the share once they are certain enough; never 0, so the estimates keep updating",
    "explore_width": "adaptive control share: the widest 95% interval of the estimated accuracy (high minus low bound) "
    "the estimates steer with",
    "curriculum_labels": "easy-to-hard schedule length for the labeler API (unset or 0: off)",
    "cold_start": "first labels before any model: `random` or `representative`",
    "auto_accept": "`0`: the scorer queues every item instead of routing confident ones to the `autolabels` topic",
    "auto_accept_precision": "the precision auto-accepted items must keep: the retrainer sets the threshold at the lowest "
    "confidence whose 95% Clopper-Pearson lower bound on the control labels reaches it (0.99 needs ~300 right control "
    "labels above the threshold; 0.97 ~100)",
    "audit_share": "share of auto-accepted items the scorer also sends to labelers as hidden audit items (0: no audit); "
    "when their answers put the audited precision's 95% upper bound under `ACTIVESTREAM_AUTO_ACCEPT_PRECISION`, auto-accept "
    "pauses until the lower bound reaches it again",
    "task": "`multiclass` (one class per item) or `multilabel` (a set of labels per item), declared before the campaign's "
    "first answer: recorded with the queue at start (as the classes are), so the labeling page, the terminal labeler and "
    "the labeler API ask for sets from the first item on; unset, the campaign's first answer decides (a service started "
    "with a task other than the one recorded refuses to start)",
    "classes": "the campaign's classes, comma-separated (`barbera,barolo,grignolino`; integers when every one is: `0,1,2`): "
    "the labeler API, the labeling page, the terminal labeler, `import-labels` and the Label Studio connector refuse any "
    "other answer, naming the item and the classes, and a retrainer with the setting dead-letters one that reaches the labels "
    "topic another way; recorded in Redis for the campaign's processes started without it; the page and the terminal show them "
    "before the first model. Unset: any label is taken, and the "
    "terminal labeler asks to type a class it has not seen before again (a typo such as `Barolo` for `barolo` "
    "would become a class of its own)",
    "budget": "the campaign's label budget: with each model version the retrainer estimates the accuracy random sampling "
    "would reach with this many labels (`est_accuracy_at_budget` with its 95% interval, beside the live `est_accuracy`; "
    "see the campaign estimates), and the budget stop rule, which fires when the labelers' labels reach it (an imported "
    "baseline and auto-accepted items cost nothing; a signal, not a lock); unset: neither",
    "labels_per_hour": "stream budget: the scorer admits only as many items as labelers can label (unset or 0: off; "
    "see the campaign controls)",
    "rerank_cache_mb": "per scorer process: it keeps the queue's feature segments it read for a re-rank (each carries a "
    "token checked on every use, so a segment a full pool compacted, a Redis rollback or a cleared queue is read afresh) "
    "up to this many MiB, held between re-ranks, so the next re-rank after a model update reads only which rows died "
    "and the segments written or compacted since; "
    "1M items of 128 float32 take ~540 MiB (0: off, every re-rank reads every segment)",
    "pool_capacity": "most pending items a namespace keeps (its pool; 0: no cap). When it is full, a new item enters "
    "only if it outranks the lowest pending item, which is evicted (its row freed, its id forgotten, so it is decided afresh "
    "if sent again); the scorer keeps the threshold and sends Redis nothing for an item below it. At ~700 bytes per pending "
    "item of 128 float32, the default 1,000,000 takes ~0.7 GB",
    "pool_max_age": "seconds after which a pending item is evicted, for drifting streams (0: off); leased items stay",
    "reservoir_share": "size of the random reservoir, as a share of `ACTIVESTREAM_POOL_CAPACITY`: a uniform sample of "
    "every item streamed (bottom-k on a hash of the id, so order and scorer do not matter), kept beside the pool; the "
    "random-control picks are drawn from it (at least one member when above 0; 0: none, control picks are drawn from the "
    "pending items). Its members are its control picks' candidates: a campaign wanting more control labels than the "
    "reservoir holds (plus the members new items replace, fewer as the stream grows) runs out of them, and its live "
    "estimates and auto-accept calibration stop moving: size it above the control labels you expect (the explore share "
    "times the labels)",
    "lease_ttl": "seconds before a leased, unlabeled item returns to the queue (timed by Redis's clock, as are passes "
    "and enqueue times, so hosts whose clocks disagree still agree on who holds what)",
    "max_skips": "an item skipped by this many different labelers leaves the queue",
    "labeler_tokens": "labeler API: a file of `<token> <labeler id>` lines; requests then need "
    "`Authorization: Bearer <token>` and act for its labeler; read again when the file changes "
    "(unset: any labeler id a request names is taken)",
    "retrain_every": "retrain after this many new labels ...",
    "retrain_interval": "... or this many seconds after an unused label",
    "full_refit_every": "every N-th version is fitted from scratch instead of warm-started",
    "holdout_fraction": "share of labeled items kept to check a new version does not regress",
    "tolerance": "largest held-out accuracy drop a new version may have",
    "estimator": "the retrainer's classifier: `module:callable` returning any scikit-learn-compatible classifier "
    "(e.g. `sklearn.ensemble:HistGradientBoostingClassifier`), exported with skl2onnx (LightGBM / XGBoost: with "
    "onnxmltools installed); warm-started when its `warm_start` continues a fit, else refitted (unset: the standardized "
    "logistic regression). `simulate` and `demo` read it too",
    "retrainer_resume": "`1`: at start, the retrainer publishes its own versions over a user's model version "
    "(`publish-model`), as `activestream retrainer --resume` does; `0` (default): it holds, says so in its log, `/healthz` "
    "and `activestream_retrainer_holding_user_version`",
    "metrics_port": "port of `/metrics` and `/healthz` (unset: any free port, printed at start)",
    "label_studio_url": "`activestream label-studio`: the Label Studio server it connects the namespace to, e.g. `http://127.0.0.1:8080`",
    "label_studio_token": "`activestream label-studio`: an API token of a Label Studio user who may manage the project "
    "(a legacy token or a personal access token)",
    "label_studio_project": "`activestream label-studio`: the project id (unset: `--create-project` creates one and prints its id)",
    "label_studio_top_n": "`activestream label-studio`: how many of the ranked queue's best items are Label Studio tasks at once "
    "(leased to `labelstudio:<project>`)",
    "label_studio_webhook_url": "`activestream label-studio`: the URL Label Studio posts annotations to (the connector's "
    "`--webhook-port`, as Label Studio reaches it); unset: polling only",
    "metrics_host": "address `/metrics` and `/healthz` listen on (`0.0.0.0` in containers)",
    "instance_id": "this process's slot, stable across its restarts and unique among its replicas (`activestream up` sets "
    "`<host>-scorer-0`, ...: the host's name, the service, the replica; compose `{hostname}`, expanded to the container's): consumers join their group as a static member "
    "(`group.instance.id`), so a restarted service gets its partitions back at once instead of after a rebalance, and "
    "a transactional producer fences its killed predecessor at once (unset: dynamic membership)",
    "redis_password_file": "a file holding the Redis password (e.g. a compose secret at `/run/secrets/redis_password`); "
    "it goes into `REDIS_URL` unless that already names one",
    "model_artifact_dir": "directories (`:`-separated) under which a model version's `artifact_uri` (`file://` or an "
    "absolute path, symlinks resolved, regular files only) may be read (unset: versions must carry their ONNX bytes "
    "inline, and one naming an artifact is dead-lettered)",
    "model_artifact_max_mb": "largest model artifact the scorer reads from `ACTIVESTREAM_MODEL_ARTIFACT_DIR` "
    "(reads also stop after 10 s)",
    "kafka_config": "passed to librdkafka as `<key>` (`_` becomes `.`), e.g. SASL/TLS settings: "
    "`ACTIVESTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL`",
}

# Fields not read from plain ACTIVESTREAM_<NAME> (see Settings.from_env).
ENV_NAMES: dict[str, str] = {
    "redis_url": "`REDIS_URL` or `ACTIVESTREAM_REDIS_URL`",
    "kafka_bootstrap_servers": "`KAFKA_BOOTSTRAP_SERVERS` or `ACTIVESTREAM_KAFKA_BOOTSTRAP_SERVERS`",
    "kafka_config": "`ACTIVESTREAM_KAFKA_<KEY>`",
}


# Defaults the field's own value does not tell (worked out from other settings when the variable is unset).
DERIVED_DEFAULTS = {"topic_prefix": "(the namespace)"}


def _default(f: dataclasses.Field) -> str:
    if f.name in DERIVED_DEFAULTS:
        return DERIVED_DEFAULTS[f.name]
    if f.default_factory is not dataclasses.MISSING:  # kafka_config: an empty mapping
        return "(none)"
    return "(unset)" if f.default is None else f"`{f.default}`"


def settings_table() -> str:
    names = [f.name for f in dataclasses.fields(config.Settings)]
    undocumented = [n for n in names if n not in DESCRIPTIONS]
    stale = sorted((set(DESCRIPTIONS) | set(ENV_NAMES)) - set(names))
    if undocumented or stale:
        raise ValueError(f"docs/hooks/settings.py: Settings fields without a description: {undocumented}; "
                         f"descriptions of fields that no longer exist: {stale}")
    rows = ["| setting | default | allowed | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(config.Settings):
        env = ENV_NAMES.get(f.name, f"`{config.ENV_PREFIX}{f.name.upper()}`")
        allowed = config.RANGES[f.name][1] if f.name in config.RANGES else ""
        rows.append(f"| {env} | {_default(f)} | {allowed} | {DESCRIPTIONS[f.name]} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown
