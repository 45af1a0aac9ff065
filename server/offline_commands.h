// `coreserve run` and `coreserve inspect`: the runtime used directly, without the server.
#pragma once


#include "server/cli.h"
#include "server/cpus.h"

namespace coreserve {

// Exit codes: 0 success; 1 the model or an input failed (message on stderr); 2 bad arguments.
int RunModelCommand(const RunOptions& options);
// Exit codes: 0 every operator supported; 1 some unsupported or the file is unusable.
int InspectModelCommand(const InspectOptions& options);


}  // namespace coreserve
