#include "server/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace coreserve {
namespace {

using ::testing::HasSubstr;
using Command = CommandLine::Command;

TEST(CommandLine, HelpAndVersion) {
  EXPECT_EQ(ParseCommandLine({})->command, Command::kHelp);
  EXPECT_EQ(ParseCommandLine({"--help"})->command, Command::kHelp);
  EXPECT_EQ(ParseCommandLine({"--version"})->command, Command::kVersion);
  EXPECT_EQ(ParseCommandLine({"serve", "--help"})->command, Command::kCommandHelp);
  // --help wins even when other flags are incomplete.
  EXPECT_EQ(ParseCommandLine({"serve", "--http-port", "1", "--help"})->command, Command::kCommandHelp);
  EXPECT_EQ(ParseCommandLine({"run", "--help"})->help_text, CommandHelp("run"));
}

TEST(CommandLine, ServeFlagsInBothForms) {
  auto cl = ParseCommandLine({"serve", "--config", "c.yaml", "--http-port=0", "--grpc-port", "9001",
                              "--metrics-port", "9002", "--model-repository", "a", "--model-repository=b",
                              "--log-level", "debug"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->command, Command::kServe);
  EXPECT_EQ(cl->serve.config_path, "c.yaml");
  EXPECT_EQ(cl->serve.http_port, "0");
  EXPECT_EQ(cl->serve.grpc_port, "9001");
  EXPECT_EQ(cl->serve.metrics_port, "9002");
  EXPECT_EQ(cl->serve.model_repositories, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cl->serve.log_level, "debug");
}

TEST(CommandLine, ErrorsAreOneLineAndNameTheProblem) {
  auto expect_error = [](std::vector<std::string> args, const std::string& part) {
    auto cl = ParseCommandLine(args);
    ASSERT_FALSE(cl.ok());
    const std::string m(cl.status().message());
    EXPECT_THAT(m, HasSubstr(part));
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  };
  expect_error({"--bogus"}, "unknown flag '--bogus'");
  expect_error({"frobnicate"}, "unknown command 'frobnicate'");
  expect_error({"serve", "--config", "c.yaml", "--bogus=1"}, "unknown flag '--bogus'");
  expect_error({"serve", "--config"}, "flag '--config' needs a value");
  expect_error({"serve"}, "serve needs --config FILE");
  expect_error({"serve", "--config", "c.yaml", "stray"}, "unexpected argument 'stray'");
  expect_error({"run", "m.onnx"}, "run needs --output-dir");
  expect_error({"run", "--output-dir", "d"}, "run needs a MODEL.onnx");
  expect_error({"run", "m.onnx", "--output-dir", "d", "--input", "noequals"}, "expected NAME=FILE.npy");
  expect_error({"run", "m.onnx", "--output-dir", "d", "--precision", "fp8"}, "'fp8' is not a precision (allowed: fp32, bf16, int8)");
  expect_error({"run", "a.onnx", "b.onnx", "--output-dir", "d"}, "unexpected argument 'b.onnx'");
  expect_error({"inspect"}, "inspect needs a MODEL.onnx");
  expect_error({"inspect", "m.onnx", "--values=yes"}, "flag '--values' takes no value");
}

TEST(CommandLine, RunAndInspect) {
  auto run = ParseCommandLine({"run", "m.onnx", "--input", "x=a.npy", "--input=y=b.npy", "--output-dir", "out",
                               "--threads", "2"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->command, Command::kRun);
  EXPECT_EQ(run->run.model, "m.onnx");
  ASSERT_EQ(run->run.inputs.size(), 2u);
  EXPECT_EQ(run->run.inputs[1], (std::pair<std::string, std::string>{"y", "b.npy"}));
  EXPECT_EQ(run->run.output_dir, "out");
  EXPECT_EQ(run->run.threads, "2");
  auto inspect = ParseCommandLine({"inspect", "m.onnx"});
  ASSERT_TRUE(inspect.ok());
  EXPECT_EQ(inspect->command, Command::kInspect);
  EXPECT_EQ(inspect->inspect.model, "m.onnx");
  EXPECT_FALSE(inspect->inspect.values);
  // A switch takes no value: the next argument stays the positional one.
  auto values = ParseCommandLine({"inspect", "--values", "m.onnx"});
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_TRUE(values->inspect.values);
  EXPECT_EQ(values->inspect.model, "m.onnx");
  EXPECT_THAT(CommandHelp("inspect"), HasSubstr("  --values  "));
}

TEST(CommandLine, Tune) {
  auto t = ParseCommandLine({"tune", "repo/bert", "--cores", "2", "--batch", "1,6", "--seq", "64", "--precision",
                             "fp32,bf16", "--hourly-price", "0.68", "--budget", "90s", "--output", "c.yaml"});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->command, Command::kTune);
  EXPECT_EQ(t->tune.model, "repo/bert");
  EXPECT_EQ(t->tune.cores, 2);
  EXPECT_EQ(t->tune.batches, (std::vector<int64_t>{1, 6}));
  EXPECT_EQ(t->tune.sequence, 64);
  EXPECT_EQ(t->tune.precisions, (std::vector<std::string>{"fp32", "bf16"}));
  EXPECT_EQ(t->tune.hourly_price, 0.68);
  EXPECT_EQ(t->tune.budget_seconds, 90);
  EXPECT_EQ(t->tune.output, "c.yaml");
  EXPECT_THAT(ParseCommandLine({"tune", "m", "--batch", "1,x"}).status().message(), HasSubstr("--batch: expected sizes"));
  EXPECT_THAT(ParseCommandLine({"tune", "m", "--precision", "fp8"}).status().message(), HasSubstr("not a precision"));
  EXPECT_THAT(ParseCommandLine({"tune"}).status().message(), HasSubstr("tune needs a MODEL"));
}

TEST(Tune, CandidateLayoutsUseEveryCore) {
  std::vector<std::string> names;
  for (const TuneLayout& l : CandidateLayouts(4)) names.push_back(l.name);
  EXPECT_EQ(names, (std::vector<std::string>{"groups [4]", "groups [2, 2]", "groups [1, 1, 1, 1]",
                                             "pipeline 2 stages x 1 core, 2 copies", "pipeline 2 stages x 2 cores",
                                             "pipeline 4 stages x 1 core"}));
  EXPECT_EQ(CandidateLayouts(1).size(), 1u);  // one group of one core: nothing to pipeline
}

TEST(CommandLine, HelpListsEveryFlag) {
  const std::string help = CommandHelp("serve");
  for (const char* flag : {"--config FILE", "--http-port PORT", "--grpc-port PORT", "--metrics-port PORT",
                           "--model-repository DIR", "--log-level LEVEL", "--help"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(MainHelp(), HasSubstr("--version"));
  for (const char* command : {"serve", "run", "inspect"}) EXPECT_THAT(MainHelp(), HasSubstr(command));
  for (const char* flag : {"--input NAME=FILE.npy", "--output-dir DIR", "--precision P", "--threads N"}) {
    EXPECT_THAT(CommandHelp("run"), HasSubstr(flag));
  }
}

TEST(ServeOverrides, ApplyAndValidate) {
  ServerConfig c;
  ServeOptions o;
  o.http_port = "0";
  o.grpc_port = "0";
  o.model_repositories = {"/x"};
  o.log_level = "error";
  ASSERT_TRUE(ApplyServeOverrides(o, &c).ok());
  EXPECT_EQ(c.http.port, 0);
  EXPECT_EQ(c.model_repositories, (std::vector<std::string>{"/x"}));
  EXPECT_EQ(c.log_level, LogLevel::kError);

  ServeOptions bad;
  bad.metrics_port = "http";
  EXPECT_THAT(std::string(ApplyServeOverrides(bad, &c).message()),
              HasSubstr("--metrics-port: expected an integer from 0 to 65535, got 'http'"));
  ServeOptions clash;
  clash.http_port = "9000";
  clash.grpc_port = "9000";
  EXPECT_THAT(std::string(ApplyServeOverrides(clash, &c).message()), HasSubstr("both 9000"));
  ServeOptions level;
  level.log_level = "loud";
  EXPECT_THAT(std::string(ApplyServeOverrides(level, &c).message()), HasSubstr("--log-level"));
}

}  // namespace
}  // namespace coreserve
