// placeholder so the library has a translation unit until real code lands
namespace gerbang {}
