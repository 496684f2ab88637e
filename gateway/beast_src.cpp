// The single translation unit that compiles Beast (BOOST_BEAST_SEPARATE_COMPILATION); see asio_src.cpp.
#include <boost/beast/src.hpp>
