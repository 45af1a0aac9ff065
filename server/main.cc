// coreserve's entry point: parses the command line and runs a command; `serve` loads the config and runs the
// server until SIGTERM/SIGINT. Exit codes: 0 success (a clean shutdown for serve), 1 when the server cannot
// start or a model or input fails, 2 for a bad command line or config.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "server/cli.h"
#include "server/config.h"
#include "server/log.h"
#include "server/offline_commands.h"
#include "server/server.h"
#include "server/version.h"

namespace {

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "coreserve: %s\n", message.c_str());
  return code;
}

int Fail(int code, const absl::Status& status) { return Fail(code, std::string(status.message())); }

int RunServe(const coreserve::ServeOptions& options) {
  auto config = coreserve::LoadServerConfig(options.config_path);
  if (!config.ok()) return Fail(2, config.status());
  if (auto s = coreserve::ApplyServeOverrides(options, &*config); !s.ok()) return Fail(2, s);
  if (const char* isa = std::getenv("CORESERVE_ISA"); isa != nullptr && *isa != '\0') {
    coreserve::kernels::CpuFeatures probe = coreserve::kernels::HostCpuFeatures();
    if (!coreserve::kernels::ApplyIsaCap(isa, &probe)) {
      return Fail(2, std::string("CORESERVE_ISA: unknown value '") + isa +
                         "' (allowed: " + coreserve::kernels::KnownIsaCaps() + ")");
    }
  }
  coreserve::SetLogLevel(config->log_level);

  // Block the shutdown signals in every thread (threads inherit the mask), then wait for them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the process

  auto server = coreserve::Server::Start(*config);
  if (!server.ok()) return Fail(1, server.status());

  int received = 0;
  sigwait(&signals, &received);
  LOG_INFO("received ", received == SIGTERM ? "SIGTERM" : "SIGINT", "; shutting down (grace ",
           config->shutdown_grace_seconds, " s)");
  (*server)->Shutdown();
  LOG_INFO("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using Command = coreserve::CommandLine::Command;
  auto cl = coreserve::ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!cl.ok()) return Fail(2, cl.status());
  switch (cl->command) {
    case Command::kHelp:
    case Command::kCommandHelp:
      std::fputs(cl->help_text.c_str(), stdout);
      return 0;
    case Command::kVersion:
      std::printf("coreserve %s (%s, %s)\n", CORESERVE_VERSION, CORESERVE_REVISION, CORESERVE_BUILD_TYPE);
      return 0;
    case Command::kServe:
      return RunServe(cl->serve);
    case Command::kRun:
      return coreserve::RunModelCommand(cl->run);
    case Command::kInspect:
      return coreserve::InspectModelCommand(cl->inspect);
    case Command::kTune:
      return coreserve::TuneCommand(cl->tune);
  }
  return 2;
}
