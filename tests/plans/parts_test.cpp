// The plan loader's building blocks: durations, suggestions, the nesting
// pre-scan and the translation of toml11's error text.
#include <gtest/gtest.h>

#include "plans/duration.h"
#include "plans/suggest.h"
#include "plans/toml_read.h"

namespace cutpilot::plans {
namespace {

using namespace std::chrono_literals;

TEST(Duration, AcceptedForms) {
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("1m30s"), 90s);
  EXPECT_EQ(parse_duration("1h2m3s4ms"), 1h + 2min + 3s + 4ms);
  EXPECT_EQ(parse_duration("0s"), 0ms);
  EXPECT_EQ(parse_duration("744h"), kMaxDuration);
}

TEST(Duration, RefusedForms) {
  for (const char* text : {"", "5", "5 minutes", "5 m", " 5m", "5m ", "1.5h", "30m1h", "5m5m", "5d",
                           "m", "5M", "-5s", "1s1s", "745h", "99999999999s", "5sm"})
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
}

TEST(Suggest, EditDistance) {
  EXPECT_EQ(edit_distance("adress", "address"), 1u);
  EXPECT_EQ(edit_distance("prot", "port"), 1u);  // a swap counts once
  EXPECT_EQ(edit_distance("Address", "address"), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Suggest, ClosestMatchOnlyWhenPlausible) {
  const std::vector<std::string_view> keys = {"address", "user", "port", "jump", "sudo"};
  EXPECT_EQ(closest_match("adress", keys), std::optional<std::string_view>("address"));
  EXPECT_EQ(closest_match("usr", keys), std::optional<std::string_view>("user"));
  EXPECT_EQ(closest_match("colour", keys), std::nullopt);
  EXPECT_EQ(closest_match("x", keys), std::nullopt);
  EXPECT_EQ(closest_match(std::string(1000, 'a'), keys), std::nullopt);
  EXPECT_EQ(did_you_mean("prot", keys), "; did you mean 'port'?");
  EXPECT_EQ(did_you_mean("zzzzzz", keys), "");
  const std::vector<std::string_view> plan = {"name", "downtime_budget"};
  EXPECT_EQ(closest_match("downtime", plan), std::optional<std::string_view>("downtime_budget"));
  EXPECT_EQ(closest_match("down", plan), std::optional<std::string_view>("downtime_budget"));
  EXPECT_EQ(closest_match("dow", plan), std::nullopt);
}

TEST(Nesting, ShallowPlansPass) {
  EXPECT_EQ(find_deep_nesting("a = [[1, 2], [3]]\nb = {c = {d = 1}}\n[x.y.z]\nk.l = 1.5\n", 64),
            std::nullopt);
  // Floats in a long array do not add up, and brackets inside strings and comments do not count.
  std::string floats = "a = [";
  for (int i = 0; i < 200; ++i)
    floats += "1.5, ";
  EXPECT_EQ(find_deep_nesting(floats + "]\n", 8), std::nullopt);
  EXPECT_EQ(find_deep_nesting("a = \"[[[[[[[[[[\"\nb = '{{{{{{{{'\n# [[[[[[[[[[\n", 4),
            std::nullopt);
  EXPECT_EQ(find_deep_nesting("a = \"\"\"\n[[[[[[[[\n\"\"\"\"\"\nb = 1\n", 4), std::nullopt);
}

TEST(Nesting, DeepArraysDottedKeysAndHeadersAreFound) {
  EXPECT_EQ(find_deep_nesting("a = [[[[[1]]]]]\n", 4), (SourcePos{1, 9}));
  EXPECT_EQ(find_deep_nesting("a.b.c.d.e = 1\n", 4), (SourcePos{1, 8}));
  EXPECT_EQ(find_deep_nesting("[a.b.c]\nd.e = 1\n", 4), (SourcePos{2, 2}));
  EXPECT_EQ(find_deep_nesting("x = {a.b = {c.d = 1}}\n", 4), (SourcePos{1, 14}));
  // A string that ends at the line's end cannot hide the next line's brackets.
  EXPECT_EQ(find_deep_nesting("a = \"open\nb = [[[[[1]]]]]\n", 4), (SourcePos{2, 9}));
  // """a"""" ends after four quotes, as in TOML, so the brackets after it count.
  EXPECT_EQ(find_deep_nesting("a = \"\"\"a\"\"\"\" [[[[[\n", 4), (SourcePos{1, 18}));
}

TEST(Utf8, WellFormedTextPasses) {
  EXPECT_EQ(find_invalid_utf8("name = \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\"\n"),
            std::nullopt);
  EXPECT_EQ(find_invalid_utf8(""), std::nullopt);
}

TEST(Utf8, MalformedSequencesAreFoundAtTheirByte) {
  EXPECT_EQ(find_invalid_utf8("ab\xff"), (SourcePos{1, 3}));
  EXPECT_EQ(find_invalid_utf8("\xc3\xa9\n\xc0\x80"), (SourcePos{2, 1}));  // overlong NUL
  EXPECT_EQ(find_invalid_utf8("x\xed\xa0\x80"), (SourcePos{1, 2}));       // a surrogate
  EXPECT_EQ(find_invalid_utf8("\xf4\x90\x80\x80"), (SourcePos{1, 1}));    // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("\xe2\x82"), (SourcePos{1, 1}));            // cut short
  EXPECT_EQ(find_invalid_utf8("\xe2\x82\xac\x80"), (SourcePos{1, 4}));    // a stray continuation
}

TEST(ReadToml, NestingUpToTheLimitParsesAndOneMoreIsRefused) {
  const auto nested = [](size_t depth) {
    return "a = " + std::string(depth, '[') + "1" + std::string(depth, ']') + "\n";
  };
  const TomlRead deepest = read_toml(nested(64), "p.toml", {1 << 20, 1 << 14, 64});
  EXPECT_TRUE(deepest.root.has_value()) << (deepest.error ? deepest.error->message : "");
  const TomlRead deeper = read_toml(nested(65), "p.toml", {1 << 20, 1 << 14, 64});
  EXPECT_FALSE(deeper.root.has_value());
  ASSERT_TRUE(deeper.error.has_value());
  EXPECT_EQ(deeper.error->pos, (SourcePos{1, 69}));
}

TEST(LongLines, FoundAtTheFirstBytePastTheLimit) {
  EXPECT_EQ(find_long_line("abc\ndef\n", 3), std::nullopt);
  EXPECT_EQ(find_long_line("abc\ndefg\n", 3), (SourcePos{2, 4}));
  EXPECT_EQ(find_long_line("abcd", 3), (SourcePos{1, 4}));
  EXPECT_EQ(find_long_line("", 3), std::nullopt);
}

TEST(SyntaxDiagnostic, TakesTheLastMarkedPositionAndCleansTheHeadline) {
  const std::string what =
      "[error] toml::parse_array: value having invalid format appeared in an array\n"
      " --> plan\n"
      "   |\n"
      " 1 | a = [1,\n"
      "   |     ^--- array starts here\n"
      " ...\n"
      " 2 |  2,, 3]\n"
      "   |    ^--- it is not a valid value.\n";
  const Diagnostic d = syntax_diagnostic(what, "p.toml", {9, 9});
  EXPECT_EQ(d.pos, (SourcePos{2, 4}));
  EXPECT_EQ(d.message,
            "invalid TOML: value having invalid format appeared in an array (it is not a valid "
            "value)");
}

TEST(SyntaxDiagnostic, FallsBackToTheExceptionPositionWithoutMarks) {
  const Diagnostic d = syntax_diagnostic("something odd", "p.toml", {3, 4});
  EXPECT_EQ(d.pos, (SourcePos{3, 4}));
  EXPECT_EQ(d.message, "invalid TOML: something odd");
}

TEST(ReadToml, NeverThrowsOnGarbage) {
  for (std::string_view text :
       {std::string_view("\xff\xfe\x00", 3), std::string_view("= = ="),
        std::string_view("a = 1979-13-99"), std::string_view("[[a]]\n[a]"),
        std::string_view("a = \"\\uD800\""), std::string_view("a = inf0")}) {
    const TomlRead read = read_toml(text, "p.toml", {1024, 1024, 64});
    EXPECT_FALSE(read.root.has_value()) << text;
    ASSERT_TRUE(read.error.has_value()) << text;
    EXPECT_GE(read.error->pos.line, 1u);
  }
}

}  // namespace
}  // namespace cutpilot::plans
