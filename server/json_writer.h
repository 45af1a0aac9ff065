// Thin helpers over RapidJSON for the HTTP front end: writing response bodies, and parsing a request body that
// must be one JSON object.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace coreserve {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// {"error": "<message>"}, the body of every HTTP error response (KServe v2 convention).
inline std::string ErrorJson(std::string_view message) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("error");
  WriteString(w, message);
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Parses `text` as one JSON object into *doc, iteratively (nesting depth costs heap, not stack, whatever the
// body); `nan_and_inf` also accepts NaN and Infinity, as TF Serving does. InvalidArgument names the offset and
// the reason.
inline absl::Status ParseJsonObject(std::string_view text, rapidjson::Document* doc, bool nan_and_inf = false) {
  if (nan_and_inf) {
    doc->Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseNanAndInfFlag>(text.data(), text.size());
  } else {
    doc->Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  }
  if (doc->HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at offset ", doc->GetErrorOffset(), ": ",
                                                   rapidjson::GetParseError_En(doc->GetParseError())));
  }
  if (!doc->IsObject()) return absl::InvalidArgumentError("the body must be a JSON object");
  return absl::OkStatus();
}

}  // namespace coreserve
