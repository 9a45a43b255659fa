//! ImageNet top-1 of real photos: the Grocery Store catalog images whose product is an ImageNet
//! class. Also settles the input scaling by measurement (see README, "Input scaling").

use std::path::PathBuf;

use burn::tensor::Device;
use unisight_core::{Architecture, Preprocess};
use unisight_data::decode::{load_rgb, DecodeLimits};
use unisight_data::preprocess::to_input;
use unisight_model::efficientnet::values_of;
use unisight_model::UnifiedModel;

/// Grocery Store fine classes that have an ImageNet-1k counterpart.
const MAPPED: &[(&str, &str)] = &[
    (
        "Fruit/Apple/Granny-Smith/Granny-Smith_Iconic.jpg",
        "Granny Smith",
    ),
    ("Fruit/Banana/Banana_Iconic.jpg", "banana"),
    ("Fruit/Lemon/Lemon_Iconic.jpg", "lemon"),
    ("Fruit/Orange/Orange_Iconic.jpg", "orange"),
    ("Fruit/Pineapple/Pineapple_Iconic.jpg", "pineapple"),
    ("Fruit/Pomegranate/Pomegranate_Iconic.jpg", "pomegranate"),
    (
        "Vegetables/Pepper/Green-Bell-Pepper/Green-Bell-Pepper_Iconic.jpg",
        "bell pepper",
    ),
    (
        "Vegetables/Pepper/Orange-Bell-Pepper/Orange-Bell-Pepper_Iconic.jpg",
        "bell pepper",
    ),
    (
        "Vegetables/Pepper/Red-Bell-Pepper/Red-Bell-Pepper_Iconic.jpg",
        "bell pepper",
    ),
    (
        "Vegetables/Pepper/Yellow-Bell-Pepper/Yellow-Bell-Pepper_Iconic.jpg",
        "bell pepper",
    ),
    ("Vegetables/Zucchini/Zucchini_Iconic.jpg", "zucchini"),
    ("Vegetables/Cucumber/Cucumber_Iconic.jpg", "cucumber"),
    (
        "Vegetables/Mushroom/Brown-Cap-Mushroom/Brown-Cap-Mushroom_Iconic.jpg",
        "mushroom",
    ),
    ("Vegetables/Cabbage/Cabbage_Iconic.jpg", "head cabbage"),
];

fn shared() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    dir.join("data/grocery-store/dataset")
        .is_dir()
        .then_some(dir)
}

fn top1_agreement(
    model: &UnifiedModel,
    shared: &std::path::Path,
    preprocess: Preprocess,
    classes: &[String],
) -> (usize, Vec<String>) {
    let root = shared.join("data/grocery-store/dataset/iconic-images-and-descriptions");
    let size = model.spec.input_size;
    let mut pixels = Vec::new();
    for (path, _) in MAPPED {
        let image = load_rgb(&root.join(path), &DecodeLimits::default()).unwrap();
        let mut buf = vec![0f32; 3 * size * size];
        to_input(&image, size, preprocess, &mut buf);
        pixels.extend(buf);
    }
    let out = model.forward(model.input(&pixels, MAPPED.len()));
    let (_, logits) = values_of(model.trunk.classify(out.features).unwrap());
    let predicted: Vec<String> = logits
        .chunks(1000)
        .map(|row| {
            let best = (0..1000)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            // ImageNet names list synonyms after commas ("zucchini, courgette")
            classes[best].split(',').next().unwrap().to_owned()
        })
        .collect();
    let hits = predicted
        .iter()
        .zip(MAPPED)
        .filter(|(p, (_, want))| p == want)
        .count();
    (hits, predicted)
}

#[test]
fn catalog_images_get_their_imagenet_class() {
    let Some(shared) = shared() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let classes: Vec<String> =
        std::fs::read_to_string(shared.join("reference/imagenet_classes.txt"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
    let model =
        UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 1280, 0, &Device::flex()).unwrap();
    let (tf, predicted) = top1_agreement(&model, &shared, Preprocess::Tf127, &classes);
    let (imagenet, _) = top1_agreement(&model, &shared, Preprocess::ImagenetMeanStd, &classes);
    println!("top-1 agreement on {} mapped catalog images: (x-127)/128 {tf}, ImageNet mean/std {imagenet}", MAPPED.len());
    println!("predictions with (x-127)/128: {predicted:?}");
    assert_eq!(predicted[1], "banana");
    assert_eq!(predicted[2], "lemon");
    assert!(
        tf * 10 >= MAPPED.len() * 7,
        "only {tf} of {} right",
        MAPPED.len()
    );
    assert!(
        tf >= imagenet,
        "the TF-Lite scaling is the one the weights were trained with"
    );
}
