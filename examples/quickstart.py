"""The README's example: STAC API -> datacube -> chips -> labels -> tensors -> batches."""

import terrapipe as tp

world = tp.datasets.sample_world()  # offline sample data, built once (~10 s)
with tp.stac.serve_stac(world) as api:  # a real STAC API (rustac) on 127.0.0.1
    items = list(tp.search_stac(api.url, collections=["demo-s2"], datetime="2024-06"))
labels = tp.open_vector(world.landcover_fgb)
pipe = (
    tp.from_items([[item] for item in items])  # one scene per element
    .stack_stac(bands=["red", "green", "blue", "nir"], resolution=10)
    .chip({"y": 256, "x": 256}, overlap={"y": 32, "x": 32})
    .rasterize(labels, column="class", name="mask")
    .to_tensor()
)
for batch in tp.loader(pipe, batch_size=8, workers=2, collate=tp.collate):
    print(batch["image"].shape, batch["mask"].shape, batch["meta"][0]["crs"])
