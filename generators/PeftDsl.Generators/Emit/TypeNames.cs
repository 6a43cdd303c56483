namespace PeftDsl.Generators.Emit
{
    /// <summary>Fully qualified names of the runtime types generated code uses.</summary>
    internal static class TypeNames
    {
        public const string Tensor = "global::TorchSharp.torch.Tensor";
        public const string Torch = "global::TorchSharp.torch";
        public const string NnModule = "global::TorchSharp.torch.nn.Module";
        public const string ModuleList = "global::TorchSharp.Modules.ModuleList";
        public const string ForwardContext = "global::PeftDsl.Runtime.ForwardContext";
        public const string StackInputs = "global::PeftDsl.Runtime.StackInputs";
        public const string KvCache = "global::PeftDsl.Runtime.KvCache";
        public const string AdapterRouting = "global::PeftDsl.Peft.AdapterRouting";
        public const string Seq2SeqLanguageModel = "global::PeftDsl.Runtime.Seq2SeqLanguageModel";
        public const string ConditionalProjections = "global::PeftDsl.Runtime.ConditionalProjections";
        public const string RelativePositionBias = "global::PeftDsl.Modules.RelativePositionBias";
        public const string CausalLanguageModel = "global::PeftDsl.Runtime.CausalLanguageModel";
        public const string IBlockModule = "global::PeftDsl.Runtime.IBlockModule";
        public const string DslChecks = "global::PeftDsl.Runtime.DslChecks";
        public const string PretrainedLoader = "global::PeftDsl.Runtime.PretrainedLoader";
        public const string ModelLoadOptions = "global::PeftDsl.Runtime.ModelLoadOptions";
        public const string PeftLinear = "global::PeftDsl.Modules.PeftLinear";
        public const string Embedding = "global::PeftDsl.Modules.Embedding";
        public const string LmHead = "global::PeftDsl.Modules.LmHead";
        public const string RotaryEmbedding = "global::PeftDsl.Modules.RotaryEmbedding";
        public const string RopeScaling = "global::PeftDsl.Modules.RopeScaling";
        public const string Attention = "global::PeftDsl.Modules.Attention";
        public const string BaseDropout = "global::PeftDsl.Modules.BaseDropout";
        public const string Activations = "global::PeftDsl.Modules.Activations";
        public const string ModuleNode = "global::PeftDsl.Modules.ModuleNode";
        public const string WeightInit = "global::PeftDsl.Modules.WeightInit";
        public const string WeightInitializer = "global::PeftDsl.Modules.WeightInitializer";
        public const string Modules = "global::PeftDsl.Modules.";
        public const string ModulePath = "global::PeftDsl.Modules.ModulePath";
        public const string ProjectionRole = "global::PeftDsl.Dsl.ProjectionRole";
        public const string WeightLayout = "global::PeftDsl.Dsl.WeightLayout";
        public const string NormKind = "global::PeftDsl.Dsl.NormKind";
        public const string AdapterSite = "global::PeftDsl.Peft.AdapterSite";
        public const string VirtualPromptSite = "global::PeftDsl.Peft.VirtualPromptSite";
        public const string PeftSite = "global::PeftDsl.Peft.PeftSite";
        public const string SiteKind = "global::PeftDsl.Peft.SiteKind";
        public const string SiteNames = "global::PeftDsl.Peft.SiteNames";
        public const string IPeftSiteOwner = "global::PeftDsl.Peft.IPeftSiteOwner";
        public const string CheckpointKey = "global::PeftDsl.Checkpoints.CheckpointKey";
        public const string CheckpointKeys = "global::PeftDsl.Checkpoints.CheckpointKeys";
        public const string CheckpointRules = "global::PeftDsl.Checkpoints.CheckpointRules";
        public const string ConfigJson = "global::PeftDsl.Config.ConfigJson";
        public const string KeyList = "global::System.Collections.Generic.List<global::PeftDsl.Checkpoints.CheckpointKey>";
        public const string Func = "global::System.Func";
        public const string SiteList = "global::System.Collections.Generic.IEnumerable<global::PeftDsl.Peft.PeftSite>";
    }
}
