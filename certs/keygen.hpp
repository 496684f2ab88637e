// Private-key generation shared by the dev CA (dev_ca.cpp) and the PKI tool (ca.cpp).
//
// THREAD SAFETY: reentrant.
// ERRORS: null with `error` set (OpenSSL's reason included).
#pragma once

#include <string>

#include "certs/dev_ca.hpp"    // KeyType
#include "crypto/openssl.hpp"  // EvpPkeyPtr

namespace gerbang::certs {

crypto::EvpPkeyPtr generate_key(KeyType type, std::string& error);

}  // namespace gerbang::certs
