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

        public bool HasErrors => items.Count > 0;

        public void Add(DiagnosticDescriptor descriptor, Location? location, params string[] args) =>
            items.Add(new DiagnosticInfo(descriptor.Id, LocationInfo.From(location), args.ToEquatableArray()));

        public EquatableArray<DiagnosticInfo> ToArray() => items.ToEquatableArray();
    }
}
