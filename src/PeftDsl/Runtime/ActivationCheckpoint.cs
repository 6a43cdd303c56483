using PeftDsl.Errors;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftDsl.Runtime;

/// <summary>
/// Activation checkpointing of one transformer block (<c>--gradient-checkpointing</c>), as PyTorch's reentrant
/// <c>torch.utils.checkpoint</c> does it: the forward runs without recording, keeping only the block's input; backward
/// runs the block again with gradients, from the same input and the same random state, and back-propagates through
/// that copy, which accumulates the block's parameter gradients and yields the input's. Memory inside the blocks falls
/// from every activation of every layer to one (B, T, C) tensor per layer, for one more forward per step.
/// TorchSharp has no saved-tensor hooks, so the non-reentrant variant is not available; see docs/memory.md. A
/// recompute that fails reports through <see cref="Autograd"/>.
/// </summary>
public static class ActivationCheckpoint
{

    /// <summary>Runs <paramref name="block"/> on <paramref name="x"/>, checkpointed when gradients are recorded in
    /// training; otherwise (evaluation, generation) plainly.</summary>
    public static Tensor Run(nn.Module<Tensor, ForwardContext, Tensor> block, Tensor x, ForwardContext ctx)
    {
        if (!is_grad_enabled() || !block.training) return block.forward(x, ctx);
        Autograd.ThrowIfBackwardFailed();
        if (ctx.Cache is not null)
            throw new PeftDslException("gradient checkpointing cannot recompute a block that reads the KV cache (prefix tuning feeds " +
                                       "its keys and values through it); train prefix tuning without --gradient-checkpointing");
        var encoder = ctx.EncoderHidden;
        // Nothing to differentiate: the plain forward records nothing either.
        if (!x.requires_grad && encoder is not { requires_grad: true } && !block.parameters().Any(p => p.requires_grad))
            return block.forward(x, ctx);
        // The recompute is reached through the block's input, so the input must ask for a gradient even when the
        // frozen embedding below it does not (peft's enable_input_require_grads, for the same reason).
        var input = x.requires_grad ? x : x.detach().requires_grad_(true);
        var call = new BlockCall(block, ctx.ForReplay(encoder?.alias().detach().DetachFromDisposeScope()), RandomState.Capture(x.device));
        var y = CheckpointedBlock.apply(call, input, encoder is { requires_grad: true } ? encoder : null);
        ctx.AdoptPositionBias(call.Context);
        return y;
    }

    /// <summary>What a checkpointed block needs again in backward: the block, its own copy of the forward context, and
    /// the random state its dropout started from.</summary>
    private sealed class BlockCall(nn.Module<Tensor, ForwardContext, Tensor> block, ForwardContext context, RandomState random)
    {
        public ForwardContext Context { get; } = context;

        public Tensor Forward(Tensor x)
        {
            random.Start();
            return block.forward(x, Context);
        }

        /// <summary>The block again, recording, on <paramref name="x"/> and the encoder output <paramref name="encoder"/>
        /// (null: the forward's own, which needs no gradient).</summary>
        public Tensor Recompute(Tensor x, Tensor? encoder)
        {
            using var replay = Context.ForReplay((encoder ?? Context.EncoderHidden)?.alias().DetachFromDisposeScope());
            return random.Replay(() => block.forward(x, replay));
        }

        public void Release()
        {
            Context.Dispose();
            random.Dispose();
        }
    }

    private sealed class CheckpointedBlock : autograd.SingleTensorFunction<CheckpointedBlock>
    {
        public override string Name => "CheckpointedBlock";

        /// <param name="vars">The <see cref="BlockCall"/>, the block input, and the encoder output when it needs a gradient (else null).</param>
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var call = (BlockCall)vars[0];
            ctx.save_data("call", call);
            ctx.save_for_backward([(Tensor)vars[1], (vars[2] as Tensor)!]);
            return call.Forward((Tensor)vars[1]);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var call = (BlockCall)ctx.get_data("call");
            try
            {
                var saved = ctx.get_saved_variables();
                using var scope = NewDisposeScope();
                Tensor x;
                Tensor? encoder = null;
                using (enable_grad())
                {
                    x = saved[0].detach().requires_grad_(true);
                    if (saved[1] is { IsInvalid: false } e) encoder = e.detach().requires_grad_(true);
                    autograd.backward([call.Recompute(x, encoder)], [gradOutput]);
                }
                // The engine reads these handles after this method returns: they move to the caller's scope (or to the GC).
                return [null!, x.grad?.MoveToOuterDisposeScope()!, encoder?.grad?.MoveToOuterDisposeScope()!];
            }
            catch (Exception e)
            {
                Autograd.Fail(e);
                return [null!, null!, null!];
            }
            finally
            {
                call.Release();
            }
        }
    }

    /// <summary>
    /// The generator state a block's dropout starts from, so the recompute draws the same masks. On the CPU the default
    /// generator's state is saved and restored around the recompute, so the stream after it is the plain run's. TorchSharp
    /// exposes no CUDA generator state, so on CUDA the block's generator is seeded from the CPU generator first, and again
    /// before the recompute: the masks repeat exactly, but differ from a run without checkpointing.
    /// </summary>
    private sealed class RandomState : IDisposable
    {
        private readonly Tensor? cpuState;
        private readonly long? cudaSeed;

        private RandomState(Tensor? cpuState, long? cudaSeed) => (this.cpuState, this.cudaSeed) = (cpuState, cudaSeed);

        public static RandomState Capture(Device device) =>
            device.type == DeviceType.CUDA
                ? new(null, randint(long.MaxValue, [1], dtype: ScalarType.Int64).item<long>())
                : new(random.get_rng_state().DetachFromDisposeScope(), null);

        /// <summary>Before the forward: on CUDA, seeds the generator (on the CPU the captured state is the current one).</summary>
        public void Start()
        {
            if (cudaSeed is { } seed) cuda.manual_seed(seed);
        }

        /// <summary>Runs the recompute from the captured state. On the CPU the generator then goes back to where it was,
        /// so that the forward's draws count once.</summary>
        public Tensor Replay(Func<Tensor> body)
        {
            if (cudaSeed is { } seed)
            {
                cuda.manual_seed(seed);
                return body();
            }
            using var now = random.get_rng_state();
            random.set_rng_state(cpuState!);
            try { return body(); }
            finally { random.set_rng_state(now); }
        }

        public void Dispose() => cpuState?.Dispose();
    }
}
