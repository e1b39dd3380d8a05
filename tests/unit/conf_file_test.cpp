// The lexical layer shared by pg_hba.conf and pg_ident.conf (config/conf_file.h), table-driven:
// comments, quoting, comma lists, continuations, CRLF, the PostgreSQL 16 include directives and
// @file expansion. The include trees live in tests/data/hba/.
#include "config/conf_file.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgmtls::config {
namespace {

const std::string kData = std::string(PGMTLS_TEST_DATA_DIR) + "/hba";

std::string errors_text(const Diagnostics& errors) {
  std::string out;
  for (const auto& e : errors)
    out += e.str() + "\n";
  return out;
}

// A token as "text", or q"text" when some part of it was quoted.
std::string render_token(const ConfToken& tok) {
  return tok.quoted ? "q\"" + tok.text + "\"" : tok.text;
}

// One record as "LINE:COL [tok,tok] [tok]"; the file is named only when `with_file` (relative to
// kData, so expectations do not depend on the checkout's location).
std::string render_line(const ConfLine& line, bool with_file = false) {
  std::string out;
  if (with_file) {
    std::string file = line.where.file;
    if (file.starts_with(kData + "/")) file = file.substr(kData.size() + 1);
    out += file + ":";
  }
  out += std::to_string(line.where.line) + ":" + std::to_string(line.where.column);
  for (const ConfField& field : line.fields) {
    out += " [";
    for (std::size_t i = 0; i < field.size(); ++i)
      out += (i ? "," : "") + render_token(field[i]);
    out += "]";
  }
  return out;
}

std::string render(const std::vector<ConfLine>& lines, bool with_file = false) {
  std::string out;
  for (const auto& line : lines)
    out += (out.empty() ? "" : "\n") + render_line(line, with_file);
  return out;
}

// ---- the lexer, one table ----

struct LexCase {
  const char* name;
  const char* text;
  const char* records;  // render() of the result
};

class ConfLexer : public ::testing::TestWithParam<LexCase> {};

TEST_P(ConfLexer, SplitsRecordsFieldsAndTokens) {
  Diagnostics errors;
  const auto lines = parse_conf_text(GetParam().text, "f.conf", errors, false);
  EXPECT_TRUE(errors.empty()) << errors_text(errors);
  EXPECT_EQ(render(lines), GetParam().records);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfLexer,
    ::testing::Values(
        LexCase{"empty", "", ""}, LexCase{"comment_only", "# TYPE DATABASE USER\n", ""},
        LexCase{"blank_lines", "\n   \t \n\n", ""}, LexCase{"simple", "a b c\n", "1:1 [a] [b] [c]"},
        LexCase{"tabs_and_indent", "  \ta\tb \t c\n", "1:4 [a] [b] [c]"},
        LexCase{"trailing_comment", "a b # c d\n", "1:1 [a] [b]"},
        LexCase{"hash_mid_token_ends_the_line", "a b#c d\n", "1:1 [a] [b]"},
        LexCase{"hash_right_after_a_field", "a b# c\n", "1:1 [a] [b]"},
        LexCase{"comment_then_record", "# x\na\n", "2:1 [a]"},
        LexCase{"quoted_keyword", "\"all\" all\n", "1:1 [q\"all\"] [all]"},
        LexCase{"quoted_space", "a \"b c\" d\n", "1:1 [a] [q\"b c\"] [d]"},
        LexCase{"quoted_comma", "a \"b,c\" d\n", "1:1 [a] [q\"b,c\"] [d]"},
        LexCase{"quoted_hash", "a \"b # c\" d\n", "1:1 [a] [q\"b # c\"] [d]"},
        LexCase{"doubled_quote_is_a_quote", "a \"say \"\"hi\"\"\"\n", "1:1 [a] [q\"say \"hi\"\"]"},
        LexCase{"empty_quoted_token", "a \"\" b\n", "1:1 [a] [q\"\"] [b]"},
        LexCase{"partly_quoted_token", "a pre\"mid dle\"post\n", "1:1 [a] [q\"premid dlepost\"]"},
        LexCase{"quoted_tab", "a \"b\tc\"\n", "1:1 [a] [q\"b\tc\"]"},
        LexCase{"comma_list", "a b,c d\n", "1:1 [a] [b,c] [d]"},
        LexCase{"comma_space_list", "a b, c d\n", "1:1 [a] [b,c] [d]"},
        LexCase{"comma_tab_list", "a b,\t c,d e\n", "1:1 [a] [b,c,d] [e]"},
        LexCase{"quoted_list_items", "a \"b\",\"c d\",e\n", "1:1 [a] [q\"b\",q\"c d\",e]"},
        LexCase{"list_in_first_field", "a,b c\n", "1:1 [a,b] [c]"},
        LexCase{"continuation", "a \\\n  b\nc\n", "1:1 [a] [b]\n3:1 [c]"},
        LexCase{"continuation_twice", "a \\\n b \\\n c\nd\n", "1:1 [a] [b] [c]\n4:1 [d]"},
        LexCase{"continuation_joins_a_token", "ab\\\ncd e\n", "1:1 [abcd] [e]"},
        LexCase{"continuation_inside_a_list", "a b,\\\nc d\n", "1:1 [a] [b,c] [d]"},
        LexCase{"comment_continues_too", "# note \\\na b\nc\n", "3:1 [c]"},
        LexCase{"backslash_inside_a_line", "a b\\c\n", "1:1 [a] [b\\c]"},
        LexCase{"crlf", "a b\r\nc d\r\n", "1:1 [a] [b]\n2:1 [c] [d]"},
        LexCase{"crlf_continuation", "a \\\r\nb\r\nc\r\n", "1:1 [a] [b]\n3:1 [c]"},
        LexCase{"crlf_comment", "a # x\r\nb\r\n", "1:1 [a]\n2:1 [b]"},
        LexCase{"no_final_newline", "a b\nc", "1:1 [a] [b]\n2:1 [c]"},
        LexCase{"quoted_include_is_not_a_directive", "\"include\" x.conf\n",
                "1:1 [q\"include\"] [x.conf]"},
        LexCase{"include_in_a_list_is_not_a_directive", "include,x y.conf\n",
                "1:1 [include,x] [y.conf]"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ConfLexerColumns, EveryTokenKnowsItsColumn) {
  Diagnostics errors;
  //                      1234567890123456789
  const auto lines = parse_conf_text("  a  \"b c\",d  e=\"f\"\n", "f", errors, false);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  ASSERT_EQ(lines.size(), 1u);
  const auto& f = lines[0].fields;
  ASSERT_EQ(f.size(), 3u);
  ASSERT_EQ(f[1].size(), 2u);
  EXPECT_EQ(f[0][0].column, 3);
  EXPECT_EQ(f[1][0].column, 6);
  EXPECT_EQ(f[1][1].column, 12);
  EXPECT_EQ(f[2][0].column, 15);
  EXPECT_EQ(f[2][0].text, "e=f");
  EXPECT_TRUE(f[2][0].quoted);
  EXPECT_EQ(lines[0].where.column, 3);
}

TEST(ConfLexerText, KeepsTheRecordAsWrittenWithoutItsComment) {
  struct Case {
    const char* text;
    const char* shown;
  };
  for (const Case& c : {
           Case{"  a   b  # comment\n", "a   b"},
           Case{"a \"x # y\" b # z\n", "a \"x # y\" b"},
           Case{"a \\\n  b\n", "a   b"},
           Case{"a\tb\r\n", "a\tb"},
       }) {
    Diagnostics errors;
    const auto lines = parse_conf_text(c.text, "f", errors, false);
    ASSERT_EQ(lines.size(), 1u) << c.text;
    EXPECT_EQ(lines[0].text, c.shown) << c.text;
  }
}

TEST(ConfLexerTokens, AQuotedTokenIsNeverAKeyword) {
  Diagnostics errors;
  const auto lines = parse_conf_text("all \"all\" a\"ll\" ALL\n", "f", errors, false);
  ASSERT_EQ(lines.size(), 1u);
  const auto& f = lines[0].fields;
  ASSERT_EQ(f.size(), 4u);
  EXPECT_TRUE(f[0][0].is_keyword("all"));
  EXPECT_FALSE(f[1][0].is_keyword("all"));
  EXPECT_EQ(f[2][0].text, "all");
  EXPECT_FALSE(f[2][0].is_keyword("all"));  // some part quoted (see ConfToken::quoted)
  EXPECT_FALSE(f[3][0].is_keyword("all"));  // keywords are case-sensitive
}

// PostgreSQL strips a trailing backslash even on the file's last line (tokenize_auth_file stops
// reading at EOF and keeps the line without it).
TEST(ConfLexerBugs, TrailingBackslashOnTheLastLineIsAContinuation) {
  GTEST_SKIP() << "BUG: a backslash ending the last line is kept as part of the token";
  Diagnostics errors;
  const auto lines = parse_conf_text("a b\\\n", "f", errors, false);
  EXPECT_TRUE(errors.empty()) << errors_text(errors);
  EXPECT_EQ(render(lines), "1:1 [a] [b]");
}

// ---- lexer errors: the whole diagnostic ----

struct LexErrorCase {
  const char* name;
  const char* text;
  bool follow_includes;
  const char* diagnostic;  // Diagnostic::str() of the only error
  const char* records;     // what is still returned
};

class ConfLexerErrors : public ::testing::TestWithParam<LexErrorCase> {};

TEST_P(ConfLexerErrors, AreReportedAtTheRecordAndSkipIt) {
  Diagnostics errors;
  const auto lines =
      parse_conf_text(GetParam().text, "dir/f.conf", errors, GetParam().follow_includes);
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].str(), GetParam().diagnostic);
  EXPECT_EQ(render(lines), GetParam().records);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfLexerErrors,
    ::testing::Values(
        LexErrorCase{"unterminated_quote", "ok 1\nbad \"open\nok 3\n", false,
                     "dir/f.conf:2: unterminated quoted string", "1:1 [ok] [1]\n3:1 [ok] [3]"},
        LexErrorCase{"unterminated_quote_on_a_continued_record", "ok 1\na \\\n  \"b\nok 4\n", false,
                     "dir/f.conf:2: unterminated quoted string", "1:1 [ok] [1]\n4:1 [ok] [4]"},
        LexErrorCase{"unterminated_quote_crlf", "a \"b\r\n", false,
                     "dir/f.conf:1: unterminated quoted string", ""},
        LexErrorCase{"trailing_comma", "a b,\nok 2\n", false,
                     "dir/f.conf:1: a list ends with a comma", "2:1 [ok] [2]"},
        LexErrorCase{"trailing_comma_before_comment", "a b, # c\n", false,
                     "dir/f.conf:1: a list ends with a comma", ""},
        LexErrorCase{"trailing_comma_before_blanks", "a b,  \t\n", false,
                     "dir/f.conf:1: a list ends with a comma", ""},
        LexErrorCase{"include_not_allowed", "ok 1\n  include x.conf\n", false,
                     "dir/f.conf:2:3: include is not allowed here", "1:1 [ok] [1]"},
        LexErrorCase{"include_dir_not_allowed", "include_dir d\n", false,
                     "dir/f.conf:1:1: include_dir is not allowed here", ""},
        LexErrorCase{"include_without_file", "include\n", true,
                     "dir/f.conf:1:1: include needs exactly one file name", ""},
        LexErrorCase{"include_two_files", "include a.conf b.conf\n", true,
                     "dir/f.conf:1:1: include needs exactly one file name", ""},
        LexErrorCase{"include_file_list", "include_if_exists a.conf,b.conf\n", true,
                     "dir/f.conf:1:1: include_if_exists needs exactly one file name", ""},
        // Relative to the directory of the text's file name, which is relative itself here.
        LexErrorCase{"include_resolves_against_the_file", "x 1\ninclude sub/none.conf\n", true,
                     "dir/f.conf:2:1: cannot read include \"dir/sub/none.conf\": No such file or "
                     "directory",
                     "1:1 [x] [1]"},
        LexErrorCase{"include_dotdot_is_normalised", "include ../none.conf\n", true,
                     "dir/f.conf:1:1: cannot read include \"none.conf\": No such file or "
                     "directory",
                     ""},
        LexErrorCase{"include_absolute_path", "include /nonexistent/pgmtls/none.conf\n", true,
                     "dir/f.conf:1:1: cannot read include \"/nonexistent/pgmtls/none.conf\": No "
                     "such file or directory",
                     ""}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- include directives over tests/data/hba ----

TEST(ConfInclude, FollowsIncludeIncludeIfExistsAndIncludeDirInOrder) {
  Diagnostics errors;
  const auto lines =
      read_conf_file(kData + "/tree/main.conf", {"pgmtls.yaml", 3, 11}, "hba_file", errors);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  // include_dir: only *.conf regular files, hidden ones skipped, sorted by name (byte order: digits
  // before upper case); an absent include_if_exists file and an empty include_dir add nothing.
  EXPECT_EQ(render(lines, true),
            "tree/main.conf:2:1 [first] [1]\n"
            "tree/sub/middle.conf:1:1 [middle] [2]\n"
            "tree/sub/inner.conf:1:1 [inner] [1]\n"
            "tree/sub/middle.conf:3:1 [middle] [3]\n"
            "tree/sub/present.conf:1:1 [present] [1]\n"
            "tree/conf.d/05-a.conf:1:1 [dir] [a]\n"
            "tree/conf.d/10-b.conf:2:1 [dir] [b]\n"
            "tree/conf.d/B.conf:1:1 [dir] [B]\n"
            "tree/main.conf:8:1 [last] [9]");
}

TEST(ConfInclude, MissingFileIsReportedAtTheIncludeLine) {
  Diagnostics errors;
  const std::string file = kData + "/errors/missing_include.conf";
  const auto lines = read_conf_file(file, {}, "hba_file", errors);
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].str(), file + ":2:1: cannot read include \"" + kData +
                                 "/errors/nope.conf\": No such file or directory");
  EXPECT_EQ(render(lines), "1:1 [before] [1]\n3:1 [after] [3]");
}

TEST(ConfInclude, MissingIncludeDirIsAnError) {
  Diagnostics errors;
  const std::string file = kData + "/errors/missing_dir.conf";
  EXPECT_TRUE(read_conf_file(file, {}, "hba_file", errors).empty());
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].str().rfind(
                file + ":1:1: cannot read include_dir \"" + kData + "/errors/nope.d\": ", 0),
            0u)
      << errors[0].str();
}

TEST(ConfInclude, IncludingADirectoryWithIncludeIsAnError) {
  Diagnostics errors;
  const std::string file = kData + "/errors/include_directory.conf";
  EXPECT_TRUE(read_conf_file(file, {}, "hba_file", errors).empty());
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].str(),
            file + ":1:1: cannot read include \"" + kData + "/tree\": not a regular file");
}

TEST(ConfInclude, TopLevelFileMissingIsReportedWhereItIsReferenced) {
  Diagnostics errors;
  EXPECT_TRUE(
      read_conf_file(kData + "/nope.conf", {"pgmtls.yaml", 4, 11}, "hba_file", errors).empty());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str(), "pgmtls.yaml:4:11: cannot read hba_file \"" + kData +
                                 "/nope.conf\": No such file or directory");
}

TEST(ConfInclude, LoopIsAnErrorAboutTheNestingDepth) {
  Diagnostics errors;
  const auto lines = read_conf_file(kData + "/loop/a.conf", {}, "hba_file", errors);
  EXPECT_TRUE(lines.empty());
  // a.conf is read at depths 0, 2, ..., 10; its include of b.conf at depth 10 is one too deep.
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].str(), kData + "/loop/a.conf:1:1: cannot include \"" + kData +
                                 "/loop/b.conf\": more than 10 nested includes (an include loop?)");
}

TEST(ConfInclude, SelfIncludeStopsAtTheLimit) {
  Diagnostics errors;
  const auto lines = read_conf_file(kData + "/loop/self.conf", {}, "hba_file", errors);
  // The file is read at depths 0..10 (11 times), then the eleventh include is refused.
  EXPECT_EQ(lines.size(), 11u);
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].message.find("more than 10 nested includes"), std::string::npos);
}

// PostgreSQL's CONF_FILE_MAX_DEPTH is 10: a file at depth 10 is read, one at depth 11 is not.
TEST(ConfInclude, TenNestedIncludesAreAllowedElevenAreNot) {
  Diagnostics ok_errors;
  const auto ok = read_conf_file(kData + "/chain/c1.conf", {}, "hba_file", ok_errors);
  EXPECT_TRUE(ok_errors.empty()) << errors_text(ok_errors);
  ASSERT_EQ(ok.size(), 11u);  // c1 .. c11
  EXPECT_EQ(ok.back().fields[1][0].text, "11");

  Diagnostics errors;
  const auto deep = read_conf_file(kData + "/chain/c0.conf", {}, "hba_file", errors);
  EXPECT_EQ(deep.size(), 11u);  // c0 .. c10
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].where.file, kData + "/chain/c10.conf");
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].message.find("/chain/c11.conf\": more than 10 nested includes"),
            std::string::npos)
      << errors[0].message;
}

// ---- @file expansion ----

std::string render_field(const ConfField& field) {
  std::string out;
  for (const auto& tok : field)
    out += (out.empty() ? "" : ",") + render_token(tok);
  return out;
}

struct AtCase {
  const char* name;
  std::vector<ConfToken> field;
  const char* expanded;
};

class ConfAtFiles : public ::testing::TestWithParam<AtCase> {};

TEST_P(ConfAtFiles, ExpandRelativeToTheNamingFile) {
  Diagnostics errors;
  // The rule file "lives" in tests/data/hba/at, so @dbs is tests/data/hba/at/dbs.
  const auto expanded =
      expand_at_files(GetParam().field, {kData + "/at/pg_hba.conf", 1, 9}, errors);
  EXPECT_TRUE(errors.empty()) << errors_text(errors);
  EXPECT_EQ(render_field(expanded), GetParam().expanded);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfAtFiles,
    ::testing::Values(
        AtCase{"no_at_token", {{"db0", false, 9}}, "db0"},
        // Whitespace, commas and newlines separate names; comments are skipped; @nested/more names
        // "more" in at/nested/, whose own @leaf is at/nested/leaf; quoting survives expansion.
        AtCase{"nested_and_relative", {{"@dbs", false, 9}}, "db1,db2,db3,db4,q\"all\",db5"},
        AtCase{"keeps_list_order",
               {{"x", false, 9}, {"@quoted", false, 11}, {"y", false, 19}},
               "x,db6,y"},
        AtCase{"quoted_at_is_a_name", {{"@dbs", true, 9}}, "q\"@dbs\""},
        AtCase{"path_with_directory", {{"@nested/leaf", false, 9}}, "db5"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ConfAtFilesErrors, MissingFileNamesTheFileAndTheToken) {
  Diagnostics errors;
  const auto expanded = expand_at_files({{"a", false, 9}, {"@nope", false, 11}},
                                        {kData + "/at/pg_hba.conf", 4, 9}, errors);
  EXPECT_EQ(render_field(expanded), "a");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str(), kData + "/at/pg_hba.conf:4:9: cannot read \"" + kData +
                                 "/at/nope\" (named by @nope): No such file or directory");
}

TEST(ConfAtFilesErrors, SelfReferenceStopsAtTheNestingLimit) {
  Diagnostics errors;
  const auto expanded =
      expand_at_files({{"@loop", false, 1}}, {kData + "/at/pg_hba.conf", 1, 1}, errors);
  EXPECT_TRUE(expanded.empty());
  ASSERT_EQ(errors.size(), 1u) << errors_text(errors);
  EXPECT_EQ(errors[0].where.file, kData + "/at/loop");
  EXPECT_NE(errors[0].message.find("more than 10 nested @ files"), std::string::npos)
      << errors[0].message;
}

// PostgreSQL's next_field_expand treats a token as an @file reference when it does not *start*
// with a quote: @"x" names the file x (hba.c: "we want to allow that to support embedded spaces in
// file paths"), while "@x" is a plain name.
TEST(ConfAtFilesBugs, AtFollowedByAQuotedFileNameIsExpanded) {
  GTEST_SKIP() << "BUG: @\"file\" is taken as the literal name @file instead of being expanded";
  Diagnostics errors;
  ConfField field = parse_conf_text("x @\"quoted\"\n", "f", errors, false)[0].fields[1];
  const auto expanded = expand_at_files(field, {kData + "/at/pg_hba.conf", 1, 3}, errors);
  EXPECT_TRUE(errors.empty()) << errors_text(errors);
  EXPECT_EQ(render_field(expanded), "db6");
}

}  // namespace
}  // namespace pgmtls::config
