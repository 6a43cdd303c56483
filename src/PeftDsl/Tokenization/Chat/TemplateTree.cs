namespace PeftDsl.Tokenization.Chat;

// Expressions.
internal abstract record Expr;
internal sealed record Literal(object? Value) : Expr;
internal sealed record NameExpr(string Name) : Expr;
internal sealed record ListExpr(List<Expr> Items) : Expr;
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr;
internal sealed record AttrExpr(Expr Target, string Name) : Expr;
internal sealed record IndexExpr(Expr Target, Expr Index) : Expr;
internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr;
internal sealed record CallExpr(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record FilterExpr(Expr Value, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record TestExpr(Expr Value, string Name, bool Negated, List<Expr> Args) : Expr;
internal sealed record UnaryExpr(string Op, Expr Operand) : Expr;
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right) : Expr;
internal sealed record ConditionalExpr(Expr Condition, Expr Then, Expr? Else) : Expr;

// Statements.
internal abstract record Node(int Line);
internal sealed record TextNode(string Text, int Line) : Node(Line);
internal sealed record OutputNode(Expr Value, int Line) : Node(Line);
internal sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else, int Line) : Node(Line);
internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, int Line) : Node(Line);
internal sealed record SetNode(string Name, string? Attribute, Expr Value, int Line) : Node(Line);
internal sealed record SetBlockNode(string Name, List<Node> Body, int Line) : Node(Line);
/// <summary>transformers' <c>{% generation %}</c>: marks the assistant's text (for assistant-only loss).</summary>
internal sealed record GenerationNode(List<Node> Body, int Line) : Node(Line);
/// <summary><c>{% macro name(a, b=default) %}</c>: a function that renders its body and returns the text.</summary>
internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body, int Line) : Node(Line);
internal sealed record BreakNode(int Line) : Node(Line);
internal sealed record ContinueNode(int Line) : Node(Line);
