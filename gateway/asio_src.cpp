// The single translation unit that compiles Asio and Asio-SSL (BOOST_ASIO_SEPARATE_COMPILATION): every other
// file only sees declarations, which keeps a 2-core build tolerable (STYLE.md §20).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
