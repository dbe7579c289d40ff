"""The experiments of lesson 7: chain of thought, self-consistency, a scaling law and GRPO.

Each experiment trains small GPTs on this machine and returns a JSON-serialisable dict.
The defaults finish in under a minute on one CPU core; ``FULL`` holds larger
settings for a GPU (``tfcourse experiment NAME --full``). ``plot_*`` draws a result.

- :func:`chain_of_thought`: the same model trained to answer ``a+b=`` directly or after a
  column-by-column scratchpad, with equal training compute (tokens processed), compared
  by accuracy for each number of digits.
- :func:`self_consistency`: sample several scratchpads per problem and take the majority
  answer (Wang et al. 2022), against a single sample.
- :func:`scaling_sweep`: language models of growing width trained alike; validation loss
  against non-embedding parameters follows ``loss = a * params ** -alpha``.
- :func:`reinforcement`: a scratchpad model trained by imitation until it is right on part of
  the problems, then improved by GRPO against the verifiable reward "the answer is right"
  (:mod:`tfcourse.rl`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from tfcourse.gpt_tasks import AdditionTask, LanguageModelTask, gpt_config, next_token_loss
from tfcourse.model import GPT, count_parameters
from tfcourse.reasoning import fit_power_law, majority_vote
from tfcourse.rl import grpo_train
from tfcourse.runs import plain_log_ticks
from tfcourse.training import TrainResult, evaluate, seeded_batches, train

Task = AdditionTask | LanguageModelTask
# The problems that decide when imitation stops are drawn apart from the evaluation's.
PROBE_SEED_OFFSET = 1000


def _train_gpt(task: Task, steps: int, batch_size: int, lr: float, seed: int, device: str | None,
               progress: bool, eval_fn: Callable[[GPT], dict[str, float]] | None = None,
               eval_every: int | None = None, stop_when: Callable[[dict[str, float]], bool] | None = None,
               **sizes) -> tuple[GPT, TrainResult]:
    """A GPT sized by ``sizes`` (``d_model``, ``n_layers``, ``n_heads``) trained on ``task``.

    ``eval_fn``, ``eval_every`` and ``stop_when`` are :func:`train`'s: evaluate, and stop early.
    """
    torch.manual_seed(seed)
    model = GPT(gpt_config(task, **sizes))
    result = train(model, seeded_batches(task.batch, batch_size, seed), next_token_loss, steps=steps, lr=lr,
                   device=device, progress=progress, eval_fn=eval_fn, eval_every=eval_every, stop_when=stop_when)
    return model, result


def _tokens_per_batch(task: Task, batch_size: int, seed: int, probes: int = 20) -> float:
    """Mean positions (padding included) the model processes per training batch."""
    next_batch = seeded_batches(task.batch, batch_size, seed)
    return sum(next_batch(i)[0].numel() for i in range(probes)) / probes


# --------------------------------------------------------------- chain of thought


def chain_of_thought(
    train_digits: Sequence[int] = (1, 2, 3),
    test_digits: Sequence[int] = (1, 2, 3, 4),
    steps: int = 400,
    batch_size: int = 64,
    lr: float = 1e-2,
    d_model: int = 48,
    n_layers: int = 2,
    n_heads: int = 4,
    equal_compute: bool = True,
    n_eval: int = 200,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Train one GPT on direct answers and one on scratchpads; accuracy by number of digits.

    Both train for ``steps`` with the same settings. With ``equal_compute`` the direct
    model's batches hold more examples, as many more as make its batches as long in tokens
    as the scratchpad model's (its examples are shorter), so both process the same number
    of tokens; otherwise both use ``batch_size``. Both are evaluated greedily on ``n_eval``
    fresh problems per digit count in ``test_digits`` (digits beyond ``train_digits`` test
    length generalisation).

    Returns ``{"digits", "direct", "scratchpad", "train_digits", "steps", "batch_size",
    "train_tokens", "parameters", "seconds"}``; ``direct`` and ``scratchpad`` hold one
    accuracy per digit count, ``batch_size`` and ``train_tokens`` one value per format.
    """
    start = time.perf_counter()
    tasks = {name: AdditionTask(name == "scratchpad", tuple(train_digits), tuple(test_digits), n_eval)
             for name in ("direct", "scratchpad")}
    tokens = {name: _tokens_per_batch(task, batch_size, seed) for name, task in tasks.items()}
    ratio = tokens["scratchpad"] / tokens["direct"] if equal_compute else 1.0
    batches = {"scratchpad": batch_size, "direct": round(batch_size * ratio)}
    result: dict = {"digits": list(test_digits), "train_digits": list(train_digits), "steps": steps,
                    "batch_size": batches,
                    "train_tokens": {name: round(tokens[name] * batches[name] / batch_size * steps) for name in tokens}}
    for name, batch in batches.items():
        model, _ = _train_gpt(tasks[name], steps, batch, lr, seed, device, progress,
                              d_model=d_model, n_layers=n_layers, n_heads=n_heads)
        model.eval()
        result[name] = [tasks[name].accuracy(model, n) for n in test_digits]
        result["parameters"] = count_parameters(model)
    result["seconds"] = time.perf_counter() - start
    return result


def plot_chain_of_thought(result: dict) -> Figure:
    """Accuracy against the number of digits, direct vs scratchpad; untrained lengths shaded."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for name, marker in (("direct", "s"), ("scratchpad", "o")):
        axes.plot(result["digits"], result[name], marker=marker, label=name)
    longest_trained = max(result["train_digits"])
    if max(result["digits"]) > longest_trained:
        axes.axvspan(longest_trained + 0.5, max(result["digits"]) + 0.5, color="grey", alpha=0.15,
                     label="longer than training")
    tokens = result["train_tokens"]
    axes.set(xlabel="digits per operand", ylabel="exact-answer accuracy", ylim=(-0.02, 1.02),
             title=f"training tokens: direct {tokens['direct']:,}, scratchpad {tokens['scratchpad']:,}")
    axes.set_xticks(result["digits"])
    axes.legend()
    return figure


# --------------------------------------------------------------- self-consistency


def self_consistency(
    digits: int = 3,
    samples: Sequence[int] = (1, 3, 5, 9, 15),
    temperature: float = 0.7,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-2,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    n_eval: int = 200,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Single sampled chain vs the majority vote over ``n`` sampled chains.

    A scratchpad model is trained on 1..``digits``-digit problems (briefly, so that it
    still errs), then ``max(samples)`` chains are sampled at ``temperature`` for each of
    ``n_eval`` ``digits``-digit problems. ``single`` is the accuracy of one sampled chain
    (averaged over all samples), ``majority[n]`` that of the majority answer of the first
    ``n`` chains (:func:`~tfcourse.reasoning.majority_vote`), ``greedy`` that of greedy decoding.
    """
    start = time.perf_counter()
    task = AdditionTask(True, tuple(range(1, digits + 1)), (digits,), n_eval)
    model, _ = _train_gpt(task, steps, batch_size, lr, seed, device, progress,
                          d_model=d_model, n_layers=n_layers, n_heads=n_heads)
    model.eval()
    problems = task.eval_problems(digits)
    truths = [a + b for a, b in problems]
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    chains = task.answers(model, problems, max(samples), temperature=temperature, generator=generator)
    correct_samples = sum(answer == truth for answers, truth in zip(chains, truths) for answer in answers)

    def majority_accuracy(n: int) -> float:
        return sum(majority_vote(answers[:n]) == truth for answers, truth in zip(chains, truths)) / len(truths)

    return {
        "digits": digits,
        "temperature": temperature,
        "greedy": task.accuracy(model, digits),
        "single": correct_samples / (len(truths) * max(samples)),
        "majority": {n: majority_accuracy(n) for n in samples},
        "seconds": time.perf_counter() - start,
    }


def plot_self_consistency(result: dict) -> Figure:
    """Majority-vote accuracy against the number of sampled chains."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    counts = sorted(int(n) for n in result["majority"])
    majority = {int(n): accuracy for n, accuracy in result["majority"].items()}
    axes.plot(counts, [majority[n] for n in counts], marker="o", label="majority of n samples")
    axes.axhline(result["single"], color="tab:red", linestyle="--", label="one sample")
    axes.axhline(result["greedy"], color="tab:grey", linestyle=":", label="greedy")
    axes.set(xlabel="sampled chains n", ylabel="accuracy", ylim=(-0.02, 1.02),
             title=f"self-consistency, {result['digits']}-digit addition, T = {result['temperature']}")
    axes.legend()
    return figure


# ------------------------------------------------------------------- scaling law


def non_embedding_parameters(model: GPT) -> int:
    """Parameters outside the token and position embeddings (the count scaling laws use)."""
    embeddings = model.token_embedding.weight.numel() + sum(p.numel() for p in model.position_embedding.parameters())
    return count_parameters(model) - embeddings


def scaling_sweep(
    widths: Sequence[int] = (16, 32, 48, 64),
    n_layers: int = 2,
    n_heads: int = 4,
    steps: int = 400,
    batch_size: int = 32,
    block_size: int = 32,
    lr: float = 3e-3,
    corpus_chars: int | None = 100_000,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Character language models of several widths trained alike; ``loss = a * params ** -alpha``.

    Every model sees the same ``steps`` batches. ``params`` counts non-embedding
    parameters (:func:`non_embedding_parameters`), ``loss`` is the validation loss in nats
    per character, and ``(a, alpha)`` is :func:`~tfcourse.reasoning.fit_power_law` of the two.
    """
    if len(widths) < 2:
        raise ValueError(f"a power law needs at least 2 model sizes, got widths {list(widths)}")
    start = time.perf_counter()
    task = LanguageModelTask.from_corpus("char", max_chars=corpus_chars, block_size=block_size)
    params, losses = [], []
    for width in widths:
        model, _ = _train_gpt(task, steps, batch_size, lr, seed, device, progress,
                              d_model=width, n_layers=n_layers, n_heads=n_heads)
        params.append(non_embedding_parameters(model))
        losses.append(evaluate(model, task.evaluate)["val_loss"])
    a, alpha = fit_power_law(params, losses)
    return {"widths": list(widths), "params": params, "loss": losses, "a": a, "alpha": alpha,
            "steps": steps, "train_tokens": steps * batch_size * block_size,
            "seconds": time.perf_counter() - start}


def plot_scaling(result: dict) -> Figure:
    """Validation loss against parameters on log-log axes, with the fitted power law."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    params, a, alpha = result["params"], result["a"], result["alpha"]
    axes.loglog(params, result["loss"], "o", label="trained models")
    line = np.geomspace(min(params) / 1.5, max(params) * 1.5, 50)
    axes.loglog(line, [a * n**-alpha for n in line], "--", label=f"${a:.3g}\\,N^{{-{alpha:.3f}}}$")
    plain_log_ticks(axes)
    axes.set(xlabel="non-embedding parameters N", ylabel="validation loss (nats/char)",
             title=f"scaling law: {result['steps']} steps each")
    axes.legend()
    return figure


# ------------------------------------------------------------------ reinforcement


def reinforcement(
    train_digits: Sequence[int] = (1, 2, 3),
    rl_digits: Sequence[int] = (3,),
    test_digits: Sequence[int] = (1, 2, 3, 4),
    imitation_steps: int = 1000,
    start_accuracy: float = 0.4,
    check_every: int = 10,
    batch_size: int = 64,
    lr: float = 1e-2,
    d_model: int = 48,
    n_layers: int = 2,
    n_heads: int = 4,
    grpo_steps: int = 200,
    prompts_per_step: int = 8,
    group_size: int = 16,
    grpo_lr: float = 1e-4,
    kl_coef: float = 0.04,
    n_eval: int = 200,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
) -> dict:
    """Imitation, then GRPO: greedy exact-match accuracy per number of digits before and after.

    A scratchpad model is trained by imitation on ``train_digits`` only until its greedy accuracy
    on ``rl_digits`` reaches ``start_accuracy`` (checked every ``check_every`` steps on ``n_eval``
    problems of their own, drawn apart from the evaluation's; at most ``imitation_steps``, the span
    of the learning-rate schedule). GRPO then starts where a group of samples holds both right
    and wrong answers, whatever the seed: a model that is almost never right gets no signal
    (every advantage is 0). :func:`~tfcourse.rl.grpo_train` improves it on problems with
    ``rl_digits`` digits: ``grpo_steps`` updates of ``prompts_per_step`` prompts with
    ``group_size`` sampled completions each, rewarded 1 for a right answer.

    Returns ``{"digits", "train_digits", "rl_digits", "before", "after", "rewards",
    "imitation_steps", "grpo_steps", "group_size", "parameters", "imitation_seconds", "seconds"}``:
    ``before`` and ``after`` hold one accuracy per digit count, ``rewards`` the mean reward of
    each GRPO update's samples, ``imitation_steps`` the imitation updates done, ``seconds`` the
    whole run (imitation, GRPO and the evaluations).
    """
    start = time.perf_counter()
    task = AdditionTask(True, tuple(train_digits), tuple(test_digits), n_eval)
    probe = dataclasses.replace(task, test_digits=tuple(rl_digits), eval_seed=task.eval_seed + PROBE_SEED_OFFSET)
    model, imitation = _train_gpt(task, imitation_steps, batch_size, lr, seed, device, progress,
                                  eval_fn=probe.evaluate, eval_every=check_every,
                                  stop_when=lambda metrics: metrics["accuracy"] >= start_accuracy,
                                  d_model=d_model, n_layers=n_layers, n_heads=n_heads)
    imitation_seconds = time.perf_counter() - start
    before = evaluate(model, task.evaluate)
    _, rewards = grpo_train(model, dataclasses.replace(task, train_digits=tuple(rl_digits)), grpo_steps,
                            prompts_per_step, group_size, grpo_lr, kl_coef=kl_coef, seed=seed, device=device,
                            progress=progress)
    after = evaluate(model, task.evaluate)
    return {"digits": list(test_digits), "train_digits": list(train_digits), "rl_digits": list(rl_digits),
            "before": [before[f"accuracy_{n}"] for n in test_digits],
            "after": [after[f"accuracy_{n}"] for n in test_digits],
            "rewards": rewards, "imitation_steps": imitation.steps, "grpo_steps": grpo_steps, "group_size": group_size,
            "parameters": count_parameters(model), "imitation_seconds": imitation_seconds,
            "seconds": time.perf_counter() - start}


def plot_reinforcement(result: dict) -> Figure:
    """Accuracy per digit count before and after GRPO, and the mean reward during GRPO."""
    figure = Figure(figsize=(10, 4))
    bars, curve = figure.subplots(1, 2)
    digits = np.array(result["digits"])
    for offset, name in ((-0.2, "before"), (0.2, "after")):
        bars.bar(digits + offset, result[name], width=0.4, label=f"{name} GRPO")
    bars.set(xlabel="digits per operand", ylabel="exact-answer accuracy (greedy)", ylim=(0, 1.02),
             title=f"GRPO on {', '.join(map(str, result['rl_digits']))}-digit problems")
    bars.set_xticks(result["digits"])
    bars.legend()
    rewards = np.array(result["rewards"])
    window = max(1, len(rewards) // 10)
    curve.plot(np.arange(1, len(rewards) + 1), rewards, alpha=0.3, label="each update")
    if len(rewards) >= window:
        smooth = np.convolve(rewards, np.ones(window) / window, mode="valid")
        curve.plot(np.arange(window, len(rewards) + 1), smooth, label=f"mean of {window}")
    curve.set(xlabel="GRPO update", ylabel="mean reward of the sampled completions",
              title=f"groups of {result['group_size']} completions, sampled at T = 1")
    curve.legend()
    figure.tight_layout()
    return figure


# -------------------------------------------------------------- registry for the CLI


def describe(name: str, result: dict) -> str:
    """A few lines summing up a result of experiment ``name`` (a key of ``RUNNERS``)."""
    if name == "cot":
        rows = [f"  {n} digits: direct {d:.0%}  scratchpad {s:.0%}"
                for n, d, s in zip(result["digits"], result["direct"], result["scratchpad"])]
        return f"chain of thought (trained on {result['train_digits']} digits):\n" + "\n".join(rows)
    if name == "self-consistency":
        votes = ", ".join(f"{n}: {accuracy:.0%}" for n, accuracy in result["majority"].items())
        return (f"self-consistency ({result['digits']} digits): greedy {result['greedy']:.0%}, "
                f"one sample {result['single']:.0%}, majority of n {{{votes}}}")
    if name == "rl":
        rows = [f"  {n} digits: before {b:.0%}  after {a:.0%}"
                for n, b, a in zip(result["digits"], result["before"], result["after"])]
        return (f"GRPO on {result['rl_digits']}-digit problems after imitation on {result['train_digits']} "
                f"({result['seconds']:.0f} s in all):\n" + "\n".join(rows))
    return (f"scaling: params {result['params']} -> loss {[round(x, 3) for x in result['loss']]}; "
            f"loss = {result['a']:.3g} * N^-{result['alpha']:.3f}")


# Keyed by the names ``tfcourse experiment`` takes.
RUNNERS: dict[str, Callable[..., dict]] = {
    "cot": chain_of_thought, "self-consistency": self_consistency, "scaling": scaling_sweep, "rl": reinforcement,
}
PLOTS: dict[str, Callable[[dict], Figure]] = {
    "cot": plot_chain_of_thought, "self-consistency": plot_self_consistency, "scaling": plot_scaling,
    "rl": plot_reinforcement,
}
FULL: dict[str, dict] = {
    "cot": dict(train_digits=tuple(range(1, 7)), test_digits=tuple(range(1, 9)), steps=5000,
                             batch_size=256, lr=1e-3, d_model=256, n_layers=4, n_heads=8, n_eval=1000),
    "self-consistency": dict(digits=5, samples=(1, 3, 5, 9, 15, 25, 41), steps=1500, batch_size=256, lr=1e-3,
                             d_model=256, n_layers=4, n_heads=8, n_eval=1000),
    "scaling": dict(widths=(32, 64, 128, 256, 384, 512), n_layers=4, n_heads=8, steps=3000, batch_size=64,
                    block_size=256, corpus_chars=None),
    "rl": dict(train_digits=tuple(range(1, 6)), rl_digits=(5,), test_digits=tuple(range(1, 7)), imitation_steps=1500,
               batch_size=256, lr=1e-3, d_model=256, n_layers=4, n_heads=8, grpo_steps=500, prompts_per_step=32,
               group_size=16, grpo_lr=3e-5, n_eval=1000),
}
