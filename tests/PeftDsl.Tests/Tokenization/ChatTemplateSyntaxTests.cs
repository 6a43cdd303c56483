using System.Text.Json;
using PeftDsl.Errors;
using PeftDsl.Tokenization.Chat;
using Xunit;

namespace PeftDsl.Tests;

/// <summary>The Jinja subset piece by piece. Each expected text is what Jinja2 3.1.6 renders with transformers'
/// settings (sandboxed, trim_blocks, lstrip_blocks, loop controls, its tojson), recorded once from Python.</summary>
public sealed class ChatTemplateSyntaxTests
{
    private static string Render(string template, string variables, bool generationPrompt = false)
    {
        using var document = JsonDocument.Parse(variables);
        var extra = document.RootElement.EnumerateObject().Where(p => p.Name != "messages").ToDictionary(p => p.Name, p => p.Value.Clone());
        var messages = document.RootElement.TryGetProperty("messages", out var m) ? m.Clone() : JsonDocument.Parse("[]").RootElement;
        return ChatTemplate.Parse(template, "t").Render(messages, generationPrompt, extra: extra).Text;
    }

    [Theory]
    [InlineData("whitespace", "<s>\n  {% if true %}\n    a\n  {% endif %}\n{%- if true -%}  b  {%- endif %} c\n{{- ' d' }}\n", "{}", "<s>\n    a\nb c d")]
    [InlineData("loop", "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ ' first' if loop.first }}{{ ' last' if loop.last }}:{{ m.role }}{% if not loop.last %}, {% endif %}{% endfor %}", "{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\"}, {\"role\": \"user\"}]}", "1/3 first:user, 2/3:assistant, 3/3 last:user")]
    [InlineData("scope", "{% set x = 1 %}{% set ns = namespace(y=1) %}{% for i in range(3) %}{% set x = x + i %}{% set ns.y = ns.y + i %}{% endfor %}{{ x }} {{ ns.y }}", "{}", "1 4")]
    [InlineData("filters", "{{ '  a b  ' | trim }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ messages | length }}|{{ missing | default('d') }}|{{ 'abc' | upper }}|{{ [3,1,2] | reverse | list }}", "{\"messages\": [{\"role\": \"user\", \"content\": \"u1\"}, {\"role\": \"assistant\", \"content\": \"a1\"}, {\"role\": \"user\", \"content\": \"u2\"}]}", "a b|u1,u2|3|d|ABC|[2, 1, 3]")]
    [InlineData("tojson", "{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}|{{ 'é\"' | tojson }}", "{\"tools\": [{\"name\": \"f\", \"parameters\": {\"a\": 1, \"b\": [true, null, 1.5]}}]}", "[{\"name\": \"f\", \"parameters\": {\"a\": 1, \"b\": [true, null, 1.5]}}]|{\n  \"name\": \"f\",\n  \"parameters\": {\n    \"a\": 1,\n    \"b\": [\n      true,\n      null,\n      1.5\n    ]\n  }\n}|\"é\\\"\"")]
    [InlineData("strings", "{{ 'a<think>b</think>c'.split('</think>')[-1].lstrip('\\n') }}|{{ 'hello'[::-1] }}|{{ 'hello'[1:3] }}|{{ 'Hi'.startswith('H') }}|{{ ' x '.strip() }}|{{ 'a-b'.replace('-', '+') }}|{{ 'x' in 'xyz' }}|{{ 3 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 1 / 2 }}|{{ 'a' ~ 1 }}", "{}", "c|olleh|el|True|x|a+b|True|1 1 8 0.5|a1")]
    [InlineData("macro", "{% macro render(item, sep=': ') %}{{ item.k }}{{ sep }}{{ item.v }}{% endmacro %}{% for i in items %}{{ render(i) }};{{ render(i, sep='=') }};{% endfor %}", "{\"items\": [{\"k\": \"a\", \"v\": 1}, {\"k\": \"b\", \"v\": 2}]}", "a: 1;a=1;b: 2;b=2;")]
    [InlineData("printing", "{{ none }}|{{ true }}|{{ 1.0 }}|{{ [1, 'a', none] }}|{{ {'a': 1} }}|{{ undefined_thing }}", "{\"none\": null}", "None|True|1.0|[1, 'a', None]|{'a': 1}|")]
    [InlineData("breakcontinue", "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "{}", "023")]
    [InlineData("loopset", "{% for m in messages %}{% if m.role=='system' %}{% set sys=m.content %}{% endif %}{{m.role}}:{{sys}};{% endfor %}", "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"u\"}]}", "system:S;user:;")]
    [InlineData("loopset2", "{% set x=1 %}{% for i in [1,2] %}{% set x=x+1 %}{{x}}{% endfor %}{{x}}", "{}", "221")]
    [InlineData("braces in strings", "{{- \"}}\" }}{% set x = '%}' %}{{ x }}", "{}", "}}%}")]
    [InlineData("lstrip l1", "{{ 'X' }}  {% if true %}y{% endif %}", "{}", "X  y")]
    [InlineData("lstrip l2", "{% if true %}  {% if true %}y{% endif %}{% endif %}", "{}", "  y")]
    [InlineData("lstrip l3", "{% if true %}\n  {% if true %}y{% endif %}{% endif %}", "{}", "y")]
    [InlineData("lstrip l4", "  {% if true %}y{% endif %}", "{}", "y")]
    [InlineData("lstrip l5", "a\n  {% if true +%}\nb{% endif %}", "{}", "a\n\nb")]
    [InlineData("lstrip l6", "{# c #}\n  {% if true %}y{% endif %}", "{}", "y")]
    [InlineData("lstrip l7", "{% if true -%}\n  {% if true %}y{% endif %}{% endif %}", "{}", "y")]
    [InlineData("pow", "{{ 2 ** 10 }} {{ 1 ** 9000000000000000000 }} {{ (-1) ** 9000000000000000001 }} {{ 2 ** 62 }} {{ 0 ** 0 }}", "{}", "1024 1 -1 4611686018427387904 1")]
    [InlineData("range", "{{ range(5, 0, -2) | list }} {{ range(3) | length }}", "{}", "[5, 3, 1] 3")]
    [InlineData("tojson2", "{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(ensure_ascii=True) }}|{{ x | tojson(true, 1) }}|{{ x | tojson(indent=2, separators=(', ', ' = ')) }}|{{ x | tojson(sort_keys=true) }}", "{\"x\": {\"b\": [\"é😀\", 1], \"a\": null}}", "{\"b\":[\"é😀\",1],\"a\":null}|{\"b\": [\"\\u00e9\\ud83d\\ude00\", 1], \"a\": null}|{\n \"b\": [\n  \"\\u00e9\\ud83d\\ude00\",\n  1\n ],\n \"a\": null\n}|{\n  \"b\" = [\n    \"é😀\", \n    1\n  ], \n  \"a\" = null\n}|{\"a\": null, \"b\": [\"é😀\", 1]}")]
    [InlineData("repr", "{{ ['don\\'t', 'a\"b', 'both\\'\"', 'tab\\there', 'back\\\\slash', 'bell\\x07'] }}|{{ {'q': \"don't\"} }}", "{}", "[\"don't\", 'a\"b', 'both\\'\"', 'tab\\there', 'back\\\\slash', 'bell\\x07']|{'q': \"don't\"}")]
    [InlineData("floats", "{{ x }}", "{\"x\": [1000000000000000.0, 1500000000000000.0, 1000000000000000.1, 1e+16, 1.5e+17, 1e-05, 0.0001, 0.00012345, -2000000000000000.0, 123.0, 0.1, 2.5, -0.0, 1e+300, 5e-324, 123456789.125]}", "[1000000000000000.0, 1500000000000000.0, 1000000000000000.1, 1e+16, 1.5e+17, 1e-05, 0.0001, 0.00012345, -2000000000000000.0, 123.0, 0.1, 2.5, -0.0, 1e+300, 5e-324, 123456789.125]")]
    [InlineData("undefined", "{{ nope is iterable }} {{ nope is sequence }}|{{ nope | trim }}|{{ nope | upper }}|{{ nope | join(',') }}|{{ nope | items | list }}|{{ nope in [1, 2] }} {{ 1 in nope }} {{ nope not in {'a': 1} }}|{{ nope | length }}", "{}", "True True||||[]|False False True|0")]
    public void RendersAsJinja(string what, string template, string variables, string expected)
    {
        Assert.False(string.IsNullOrEmpty(what));
        Assert.Equal(expected, Render(template, variables));
    }

    [Fact]
    public void RaiseExceptionIsOneLineWithTheTemplatesMessage()
    {
        var e = Assert.Throws<PeftDslException>(() =>
            Render("ok\n{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}", """{"messages": [{"role": "system"}]}"""));
        Assert.Equal("t: line 2: the template refuses the conversation: first must be user", e.Message);
    }

    [Theory]
    [InlineData("a\n{% include 'x.j2' %}", "t: line 2: '{% include %}' is not supported")]
    [InlineData("{% for x in y recursive %}{% endfor %}", "t: line 1: recursive for loops are not supported")]
    [InlineData("{% if x %}", "t: line 1: a block is never closed (expected ")]
    [InlineData("{% endfor %}", "t: line 1: 'endfor' without an open block")]
    [InlineData("{{ 99999999999999999999 }}", "t: line 1: the integer 99999999999999999999 is too large")]
    [InlineData("a\n{% break %}", "t: line 2: '{% break %}' outside a for loop")]
    [InlineData("{% for x in y %}{% macro f() %}{% continue %}{% endmacro %}{% endfor %}", "t: line 1: '{% continue %}' outside a for loop")]
    [InlineData("{% if false %}{{ messages | frobnicate }}{% endif %}", "t: line 1: filter 'frobnicate' is not supported (supported: ")]
    [InlineData("a\n{% for m in messages if m is prime %}{% endfor %}", "t: line 2: test 'prime' is not supported (supported: ")]
    public void UnsupportedOrBrokenSyntaxIsRefusedWhenParsed(string template, string message)
    {
        var e = Assert.Throws<PeftDslException>(() => ChatTemplate.Parse(template, "t"));
        Assert.StartsWith(message, e.Message);
    }

    [Theory]
    [InlineData("{{ messages[0].content.upper() }}", "'messages[0].content' is undefined")]
    [InlineData("{{ nothing.field }}", "'nothing' is undefined")]
    [InlineData("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro 'f': macros call each other more than 100 deep")]
    [InlineData("{{ range(100001) | length }}", "range() of 100001 items: the sandbox allows at most 100000")]
    [InlineData("{{ nothing | tojson }}", "'nothing' is undefined, and undefined is not JSON serializable")]
    [InlineData("{{ 2 ** 64 }}", "2 ** 64 is past the 64-bit integers a template can compute")]
    public void MisusedValuesAreOneLineNamingWhat(string template, string message)
    {
        var e = Assert.Throws<PeftDslException>(() => Render(template, """{"messages": [{"role": "user"}]}"""));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("t: line 1: ", e.Message);
    }

    [Fact]
    public void GenerationBlocksMarkTheAssistantsText()
    {
        const string template = "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}";
        using var document = JsonDocument.Parse("""[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "?"}, {"role": "assistant", "content": "ok"}]""");
        var render = ChatTemplate.Parse(template, "t").Render(document.RootElement, false);
        Assert.Equal("<user>hi<assistant>yo</s><user>?<assistant>ok</s>", render.Text);   // trim_blocks takes each "\n"
        Assert.Equal(["yo</s>", "ok</s>"], render.Generations.Select(g => render.Text[g.Start..g.End]));
    }

    [Fact]
    public void GenerationInsideAMacroIsRefused()
    {
        var e = Assert.Throws<PeftDslException>(() =>
            Render("{% macro f() %}{% generation %}x{% endgeneration %}{% endmacro %}{{ f() }}", "{}"));
        Assert.Contains("'{% generation %}' inside a macro or a set block is not supported", e.Message);
    }

    [Fact]
    public void ToolsAndDocumentsAreNoneWhenNotGiven()
    {
        // transformers passes tools=None and documents=None, so templates that test "is not none" print nothing.
        Assert.Equal("ok", Render("{% if tools is not none %}[{{ tools|tojson }}]{% endif %}{% if documents is none %}ok{% endif %}", "{}"));
    }

    [Fact]
    public void EveryFilterAndTestTheCheckAcceptsIsComputed()
    {
        // The names the parse-time check lets through must each be handled when rendered (any other error is fine:
        // the values here are not what most filters want).
        foreach (var (names, form) in new[] { (TemplateBuiltins.FilterNames, "{{{{ [1] | {0} }}}}"), (TemplateBuiltins.TestNames, "{{{{ [1] is {0} }}}}") })
            foreach (var name in names)
            {
                var template = string.Format(System.Globalization.CultureInfo.InvariantCulture, form, name);
                try
                {
                    Render(template, "{}");
                }
                catch (PeftDslException e)
                {
                    Assert.DoesNotContain("is not supported", e.Message);
                }
            }
    }
}
