"""sgpo-lab: learn, inspect and reproduce Strategy-Guided Policy Optimization (SGPO) on small causal LMs.

The wings, lower never importing higher:
    world/      task families, strategy cards, prompts, character tokenizer, pretraining corpus
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
    kl_clip, delta  per-token clipping of the distillation KL (hard | scale | none) at delta
    weight          w_i, the adaptive per-problem weight of the distillation term

Metrics (metrics.jsonl, one row per step):
    loss            total loss of the step                 loss_grpo      autonomous GRPO (or LUFFY) term
    loss_distill    mean_i w_i * L_KD,i                    loss_sft       SFT NLL (SFT steps)
    p_auto          mean autonomous pass rate of the batch p_guided       mean guided pass rate
    reward_mean     mean autonomous reward                 entropy        policy entropy on autonomous rollouts
    kl_mean         mean token KL(teacher || student) on targets (before clipping)
    clipped_frac    share of target tokens with KL > delta n_targets      distillation targets in the batch
    weight_mean / weight_max / weight_nonzero               the batch's adaptive weights
    grpo_clip_frac  share of tokens where the ratio clip is active
    grad_norm       gradient norm before clipping to 1     completion_len mean autonomous completion length
    time_sample / time_score / time_update / time_step      seconds spent in each part of the step
"""

__version__ = "0.1.0"
