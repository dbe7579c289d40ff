"""Natural wrong answers to lesson 07 (chain of thought, self-consistency, scaling laws, GRPO), as learners write them.

Each entry's ``source`` is the learner's cell (and the cells before it that it uses, written
correctly); ``words`` are what its report must say for the learner to see the mistake.
"""

from tests.support.wrong_corpus import WrongAnswer

# --- cells a later exercise builds on, written correctly -------------------------------------------

HELPERS = '''
def extract_answer(text):
    head, dot, _ = text.partition(".")
    if not dot:
        return None
    m = re.search(r"(?:^|=)(\\d+)$", head)
    return int(m.group(1)) if m else None


def majority_vote(answers):
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None
'''


def _addition(loop: str, target: str = 'f"{cot},={a + b}."', direct: str = 'f"{a + b}."') -> str:
    """A make_addition_example cell with the learner's column loop and targets."""
    return f'''
def make_addition_example(a, b, chain_of_thought):
    prompt = f"{{a}}+{{b}}="
    if not chain_of_thought:
        return prompt, {direct}
    steps = []{loop}
    cot = ",".join(steps)
    return prompt, {target}
'''


PADDED_LOOP = '''
    n = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(n)[::-1], str(b).zfill(n)[::-1]
    carry = 0
    for x, y in zip(da, db):
        s = int(x) + int(y) + carry
        steps.append(f"{x}+{y}+{carry}={s}")
        carry = s // 10'''


def _completion(body: str) -> str:
    return f'''
def completion_loss(logits, tokens, prompt_lengths):
    B, T, V = logits.shape{body}
'''


def _fit(body: str) -> str:
    return f'''
def fit_power_law(sizes, losses):
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.asarray(losses, dtype=np.float64)){body}
'''


LSTSQ = '''
    A = np.stack([x, np.ones_like(x)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)'''


def _advantage(body: str) -> str:
    return f'''
def group_relative_advantage(rewards, eps=1e-6):{body}
'''


def _objective(surrogate: str = "torch.min(ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A)",
               ratio: str = "torch.exp(logprobs - old_logprobs)", kl: str = "torch.exp(ref_logprobs - logprobs) - (ref_logprobs - logprobs) - 1",
               reduce: str = "(((surrogate - kl_coef * kl) * m).sum(dim=1) / m.sum(dim=1)).mean()", sign: str = "-") -> str:
    """A grpo_objective cell with the learner's surrogate, ratio, KL and reduction."""
    return f'''
def grpo_objective(logprobs, old_logprobs, ref_logprobs, advantages, mask, clip_eps=0.2, kl_coef=0.04):
    ratio = {ratio}
    A = advantages.unsqueeze(1)
    surrogate = {surrogate}
    kl = {kl}
    m = mask.float()
    return {sign}{reduce}
'''


ANSWERS = [
    # --- make_addition_example ------------------------------------------------------------------
    WrongAnswer("make_addition_example", _addition(PADDED_LOOP, direct='f"{a + b}"'), ('terminator',),
                "forgets the terminator in the direct target only"),
    WrongAnswer("make_addition_example", _addition('''
    n = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(n), str(b).zfill(n)
    carry = 0
    for i in range(n):
        s = int(da[i]) + int(db[i]) + carry
        steps.append(f"{da[i]}+{db[i]}+{carry}={s}")
        carry = s // 10'''), ("ones column first",), "walks the columns left to right, as the digits are read"),
    WrongAnswer("make_addition_example", _addition('''
    n = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(n)[::-1], str(b).zfill(n)[::-1]
    carry = 0
    for x, y in zip(da, db):
        s = int(x) + int(y) + carry
        carry = s // 10
        steps.append(f"{x}+{y}+{carry}={s}")'''), ("carry into",),
                "updates the carry before writing the step, so each step shows its own carry out"),
    WrongAnswer("make_addition_example", _addition('''
    carry = 0
    for x, y in zip(str(a)[::-1], str(b)[::-1]):
        s = int(x) + int(y) + carry
        steps.append(f"{x}+{y}+{carry}={s}")
        carry = s // 10'''), ("leading zeros",), "zips the reversed digits, so the longer operand's extra digits vanish"),
    WrongAnswer("make_addition_example", _addition(PADDED_LOOP, target='f"{cot}={a + b}."'),
                ("should be '8+7+0=15,5+6+1=12,=125.'",), "joins the answer to the steps with \"=\" instead of \",=\""),

    # --- completion_loss ------------------------------------------------------------------------
    WrongAnswer("completion_loss", _completion('''
    targets = tokens[:, :-1]
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    learn = torch.arange(1, T + 1, device=tokens.device)[None, :] >= prompt_lengths[:, None]
    return nll[learn].mean()'''), ("next token",), "takes the tokens the model reads as targets, not the next ones"),
    WrongAnswer("completion_loss", _completion('''
    targets = tokens[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    learn = torch.arange(T, device=tokens.device)[None, :] >= prompt_lengths[:, None]
    return nll[learn].mean()'''), ("first target token",), "compares the logit's index t, not the predicted position t + 1, with the prompt length"),
    WrongAnswer("completion_loss", _completion('''
    targets = tokens[:, 1:]
    nll = F.cross_entropy(logits, targets, reduction="none")
    learn = torch.arange(1, T + 1, device=tokens.device)[None, :] >= prompt_lengths[:, None]
    return nll[learn].mean()'''), ("line", "transpose"), "gives cross_entropy the logits (B, T, V) without moving the classes to dimension 1"),
    WrongAnswer("completion_loss", _completion('''
    targets = tokens[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    learn = (torch.arange(1, T + 1, device=tokens.device)[None, :] >= prompt_lengths[:, None]).float()
    return ((nll * learn).sum(1) / learn.sum(1)).mean()'''), ("every token weighs the same",),
                "averages each row's loss, then the rows"),
    WrongAnswer("completion_loss", _completion('''
    targets = tokens[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    learn = torch.arange(1, T + 1, device=tokens.device) >= prompt_lengths
    return nll[learn].mean()'''), ("line", "broadcast"), "compares the positions with prompt_lengths without a new axis"),

    # --- extract_answer -------------------------------------------------------------------------
    WrongAnswer("extract_answer", '''
def extract_answer(text):
    m = re.search(r"\\d+", text)
    return int(m.group()) if m else None
''', ("not the first number",), "returns the first number in the text, an operand"),
    WrongAnswer("extract_answer", '''
def extract_answer(text):
    if "." not in text:
        return None
    return int(text.split("=")[-1].rstrip("."))
''', ('first "."',), "takes what follows the last \"=\" of the whole text, past the terminator"),
    WrongAnswer("extract_answer", '''
def extract_answer(text):
    head, dot, _ = text.partition(".")
    if not dot:
        return None
    return int(head.split("=")[-1])
''', ("line", "int()"), "converts whatever follows the last \"=\" with int(), which raises on non-digits"),
    WrongAnswer("extract_answer", '''
def extract_answer(text):
    head = text.split(".")[0]
    m = re.search(r"(?:^|=)(\\d+)$", head)
    return int(m.group(1)) if m else None
''', ("return none",), "cuts at the first \".\" but accepts a text that never reached one"),

    # --- majority_vote --------------------------------------------------------------------------
    WrongAnswer("majority_vote", '''
def majority_vote(answers):
    if not answers:
        return None
    return Counter(answers).most_common(1)[0][0]
''', ("leave it out",), "counts None as an answer"),
    WrongAnswer("majority_vote", '''
def majority_vote(answers):
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: kv[1])[-1][0]
''', ("first in the list",), "sorts by count and takes the last, so a tie goes to the last answer seen"),
    WrongAnswer("majority_vote", '''
def majority_vote(answers):
    return Counter(a for a in answers if a is not None).most_common(1)[0][0]
''', ("line", "out of range"), "indexes most_common's result even when there are no answers"),
    WrongAnswer("majority_vote", '''
def majority_vote(answers):
    answers = [a for a in answers if a is not None]
    if not answers:
        return None
    return max(set(answers), key=answers.count)
''', ("appears first",), "takes the max over a set, whose order decides ties"),

    # --- self_consistency_accuracy --------------------------------------------------------------
    WrongAnswer("self_consistency_accuracy", HELPERS + '''
def self_consistency_accuracy(completions, answers):
    right = total = 0
    for samples, answer in zip(completions, answers):
        for text in samples:
            right += extract_answer(text) == answer
            total += 1
    return right / total
''', ("vote first",), "scores every sample instead of each question's vote"),
    WrongAnswer("self_consistency_accuracy", HELPERS + '''
def self_consistency_accuracy(completions, answers):
    correct = 0
    for samples, answer in zip(completions, answers):
        if majority_vote([extract_answer(t) for t in samples]) == answer:
            correct += 1
    return correct
''', ("divide",), "returns the number of questions solved, not the fraction"),
    WrongAnswer("self_consistency_accuracy", HELPERS + '''
def self_consistency_accuracy(completions, answers):
    votes = [majority_vote([extract_answer(t) for t in samples]) for samples in completions]
    return sum(v == a for v, a in zip(votes, answers)) / len(completions[0])
''', ("times",), "divides by the number of samples per question instead of the number of questions"),

    # --- fit_power_law --------------------------------------------------------------------------
    WrongAnswer("fit_power_law", _fit(LSTSQ + '''
    return float(np.exp(intercept)), float(slope)'''), ("-slope",), "returns the slope itself as alpha"),
    WrongAnswer("fit_power_law", _fit(LSTSQ + '''
    return float(intercept), float(-slope)'''), ("exp(intercept)",), "returns the intercept, log(a), as a"),
    WrongAnswer("fit_power_law", '''
def fit_power_law(sizes, losses):
    x = np.log10(np.asarray(sizes, dtype=np.float64))
    y = np.log10(np.asarray(losses, dtype=np.float64))
    m = np.cov(x, y, bias=True)[0, 1] / np.var(x)
    c = y.mean() - m * x.mean()
    return float(np.exp(c)), float(-m)
''', ("10 ** intercept",), "fits in base-10 logs but undoes the intercept with np.exp"),
    WrongAnswer("fit_power_law", _fit('''
    A = np.stack([y, np.ones_like(y)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, x, rcond=None)
    return float(np.exp(intercept)), float(-slope)'''), ("regress log(loss)",), "fits log(size) against log(loss)"),

    # --- group_relative_advantage ---------------------------------------------------------------
    WrongAnswer("group_relative_advantage", _advantage('''
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    return (rewards - mean) / (std + eps)'''), ("group_size - 1",), "uses the population std (divides by G)"),
    WrongAnswer("group_relative_advantage", _advantage('''
    return (rewards - rewards.mean()) / (rewards.std() + eps)'''), ("each row",), "normalises over the whole batch"),
    WrongAnswer("group_relative_advantage", _advantage('''
    mean = rewards.mean(dim=0, keepdim=True)
    std = rewards.std(dim=0, keepdim=True)
    return (rewards - mean) / (std + eps)'''), ("per row",), "takes the statistics down the columns, across prompts"),
    WrongAnswer("group_relative_advantage", _advantage('''
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, keepdim=True)
    return (rewards - mean) / std'''), ("add eps",), "forgets eps, so an all-equal group divides 0 by 0"),
    WrongAnswer("group_relative_advantage", _advantage('''
    mean = rewards.mean(dim=-1, keepdim=True)
    var = ((rewards - mean) ** 2).sum(dim=-1, keepdim=True) / (rewards.shape[1] - 1)
    return (rewards - mean) / torch.sqrt(var + eps)'''), ("not to the variance under the square root",), "puts eps under the square root"),

    # --- grpo_objective -------------------------------------------------------------------------
    WrongAnswer("grpo_objective", _objective(surrogate="torch.max(ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A)"),
                ("minimum",), "keeps the larger of the two surrogate terms"),
    WrongAnswer("grpo_objective", _objective(surrogate="torch.min(ratio * A, torch.clamp(ratio * A, 1 - clip_eps, 1 + clip_eps))"),
                ("clip the ratio",), "clips the product ratio * A instead of the ratio"),
    WrongAnswer("grpo_objective", _objective(ratio="torch.exp(old_logprobs - logprobs)"), ("new over old",),
                "divides the old probability by the new one"),
    WrongAnswer("grpo_objective", _objective(kl="logprobs - ref_logprobs"), ("k3",), "estimates the KL by the plain log-ratio"),
    WrongAnswer("grpo_objective", _objective(kl="torch.exp(logprobs - ref_logprobs) - (logprobs - ref_logprobs) - 1"),
                ("swapped",), "swaps the two log-probabilities in the KL estimator"),
    WrongAnswer("grpo_objective", _objective(reduce="((surrogate - kl_coef * kl) * m).sum() / m.sum()"),
                ("each completion's tokens first",), "averages over all the batch's tokens at once"),
    WrongAnswer("grpo_objective", _objective(reduce="(surrogate - kl_coef * kl).mean()"), ("mask",),
                "averages over every position, the masked ones too"),
    WrongAnswer("grpo_objective", _objective(sign=""), ("minus the objective",), "returns the objective J, not the loss -J"),
    WrongAnswer("grpo_objective", _objective(reduce="(((surrogate + kl_coef * kl) * m).sum(dim=1) / m.sum(dim=1)).mean()"),
                ("subtracts kl_coef",), "adds the KL penalty to the objective"),
]
