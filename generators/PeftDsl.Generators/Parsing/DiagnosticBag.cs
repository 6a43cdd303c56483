using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftDsl.Generators.Model;

namespace PeftDsl.Generators.Parsing
{
    /// <summary>Collects diagnostics as plain data during one transform.</summary>
    internal sealed class DiagnosticBag
    {
        private readonly List<DiagnosticInfo> items = new();
        private int errors;

        /// <summary>True once an error was added (warnings do not stop the emitter).</summary>
        public bool HasErrors => errors > 0;

        public void Add(DiagnosticDescriptor descriptor, Location? location, params string[] args)
        {
            if (descriptor.DefaultSeverity == DiagnosticSeverity.Error) errors++;
            items.Add(new DiagnosticInfo(descriptor.Id, LocationInfo.From(location), args.ToEquatableArray()));
        }

        public EquatableArray<DiagnosticInfo> ToArray() => items.ToEquatableArray();
    }
}
