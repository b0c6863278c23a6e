"""sgpo-lab: learn, inspect and reproduce Strategy-Guided Policy Optimization (SGPO) on small causal LMs.

The wings, lower never importing higher:
    world/      the Strategy World: task families, strategy cards, prompts, character tokenizer, corpus
    tasks/      the Task interface; the world, reasoning-gym, JSONL and module tasks (load_task)
    prompts     plain or chat-template prompts of a task for a tokenizer; cards: card files
    models      named sizes and the one loader (size | run checkpoint | any local HF causal LM)
    rollout     batched sampling with a KV cache; scoring a completion under two contexts
    fastdecode  rollout's decoder for the lab's own Llama models (a group shares its prompt's cache)
    shifts      per-token distribution shift a strategy induces
    losses      the pure math: token KL, clipping, advantages, GRPO, LUFFY shaping, weights, targets
    config      one typed config per run, and the named method presets
    trainer     the loop; evaluate: pass rates, accuracy, pass@k; runs: the run directory
    viz/        plotly figure builders shared by the app and the notebooks

Glossary (the same names in library, notebooks, app and metrics):
    strategy        a strategy card's text: "Problem type / Strategy / Key steps", no numbers
    group_size      G, autonomous rollouts per problem, y ~ pi(. | x)
    guided_size     H, guided rollouts per problem, ~y ~ pi(. | x, s)
    p_auto          autonomous pass rate of a problem (share of its G rollouts that verify)
    p_guided        guided pass rate (share of its H guided rollouts that verify)
    target          the correct guided rollout chosen for distillation (likeliest under pi(. | x))
    teacher_logits  pi_old(. | x, s, ~y_<t): the policy with the strategy in context (no gradient); for the
                    live teacher, the logits the guided rollout was sampled from
    student_logits  pi_theta(. | x, ~y_<t): the same tokens, strategy removed
    kl_clip, delta  per-token clipping of the distillation KL (hard | scale | none) at delta (the lab's readings)
    weight          w_i, the adaptive per-problem weight of the distillation term

Metrics: ``sgpo_lab.metrics.METRICS`` lists every column of metrics.jsonl with its label and meaning.
Tasks: ``sgpo_lab.tasks`` (``load_task``: world, reasoning-gym:DATASET, jsonl:PATH, module:function).
Design: docs/design.md (the method as the lab implements it, the task interface, the run directory).
"""

__version__ = "0.1.0"
