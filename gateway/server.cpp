namespace gerbang::gateway {}
