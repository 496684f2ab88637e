namespace gerbang::config {}
